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

static void object_tags_one(struct kt_tree *t, const char *key)
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

static void object_tags(struct kt_tree *t, const struct kt_step *st)
{
  for (size_t k = 0; k < st->nstrs; k++)
    object_tags_one(t, st->strs[k]);
}

/* Spans of a trace source: service or operation := the listed tags' values
 * joined by spaces, skipping empty ones and namespace "default". */
static void service_operation(struct kt_tree *t, const struct kt_step *st)
{
  char buf[512];
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *s = t->s[i];
    const char *src = s ? kt_span_tag(s, SOURCE) : NULL;
    if (!src || strcmp(src, st->trace_source) != 0 || is_type(s, "linkClass"))
      continue;
    size_t n = 0;
    buf[0] = 0;
    for (size_t k = 0; k < st->nstrs && n < sizeof buf; k++) {
      const char *v = kt_span_tag(s, st->strs[k]);
      if (!v || !*v || (!strcmp(st->strs[k], "namespace") && !strcmp(v, "default")))
        continue;
      n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? " " : "", v);
    }
    if (st->dest_operation)
      set_str(&s->operation, buf);
    else if (n)
      set_str(&s->service, buf);
  }
}

static void replace_name(struct kt_tree *t)
{
  for (size_t i = 0; i < t->n; i++) {
    const char *v = t->s[i] ? kt_span_tag(t->s[i], "zzz-kelemetryName") : NULL;
    if (v) {
      char *c = strdup(v);
      if (c) {
        free(t->s[i]->operation);
        t->s[i]->operation = c;
      }
    }
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

/* The class of a diff line's path: the longest configured prefix of it,
 * trimming a trailing `[...]` or `.segment` step by step; else default. */
static size_t diff_class(const struct kt_step *st, const char *line)
{
  char path[512];
  const char *sp = strchr(line, ' ');
  size_t n = sp ? (size_t)(sp - line) : strlen(line);
  if (n >= sizeof path)
    n = sizeof path - 1;
  memcpy(path, line, n);
  path[n] = 0;
  for (;;) {
    for (size_t i = 0; i < st->nprefixes; i++)
      if (!strcmp(st->prefixes[i].prefix, path))
        return st->prefixes[i].cls;
    char *cut = strrchr(path, path[n ? strlen(path) - 1 : 0] == ']' ? '[' : '.');
    if (!cut || cut == path)
      return 0;
    *cut = 0;
  }
}


/* Splits audit/objectDiff lines into one field per displayed class, in
 * class priority order. */
static void diff_fields(const struct kt_step *st, const struct kt_span *c,
                        struct kt_tag **f, size_t *n)
{
  size_t cap = 0;
  for (size_t i = 0; i < c->nlogs; i++)
    if (strcmp(c->logs[i].type, "audit/objectDiff") == 0)
      cap += strlen(c->logs[i].msg) + 1;
  if (!cap || !st->nclasses)
    return;
  char **text = calloc(st->nclasses, sizeof *text);
  size_t order[32], nc = st->nclasses < 32 ? st->nclasses : 32;
  for (size_t k = 0; text && k < nc; k++) {
    text[k] = calloc(1, cap + 1);
    order[k] = k;
  }
  for (size_t i = 0; text && i < c->nlogs; i++) {
    if (strcmp(c->logs[i].type, "audit/objectDiff") != 0)
      continue;
    for (const char *p = c->logs[i].msg; *p;) {
      const char *nl = strchr(p, '\n');
      size_t len = nl ? (size_t)(nl - p) : strlen(p);
      size_t k = diff_class(st, p);
      if (len && k < nc && text[k] && st->classes[k].display) {
        if (*text[k])
          strcat(text[k], "\n");
        strncat(text[k], p, len);
      }
      p += len + (nl ? 1 : 0);
    }
  }
  for (size_t a = 1; a < nc; a++) /* by priority; a handful of classes */
    for (size_t b = a; b > 0 && st->classes[order[b - 1]].priority >
                                    st->classes[order[b]].priority; b--) {
      size_t tmp = order[b];
      order[b] = order[b - 1];
      order[b - 1] = tmp;
    }
  for (size_t k = 0; text && k < nc; k++)
    if (text[order[k]] && *text[order[k]])
      add_field(f, n, st->classes[order[k]].name, text[order[k]]);
  for (size_t k = 0; text && k < nc; k++)
    free(text[k]);
  free(text);
}

static void collapse_child(const struct kt_step *st, struct kt_span *parent,
                           const struct kt_span *c)
{
  const char *src = kt_span_tag(c, SOURCE);
  struct kt_tag *f = NULL;
  size_t n = 0;
  add_field(&f, &n, SOURCE, src);
  add_field(&f, &n, src, c->operation);
  for (size_t i = 0; i < st->nmaps; i++) {
    const char *v = kt_span_tag(c, st->maps[i].from);
    if (!strcmp(src, st->maps[i].src) && v && *v)
      add_field(&f, &n, st->maps[i].to, v);
  }
  diff_fields(st, c, &f, &n);
  for (size_t i = 0; i < c->nlogs; i++)
    for (size_t j = 0; j < st->nlogmaps; j++)
      if (strcmp(c->logs[i].type, st->logmaps[j].type) == 0)
        add_field(&f, &n, st->logmaps[j].field, c->logs[i].msg);
  kt_span_add_log_fields(parent, c->start_us, f, n);
}

/* Each pseudo span's direct non-pseudo children of a collapsible trace
 * source become logs on it (with their subtree gone). */
static void collapse(struct kt_tree *t, const struct kt_step *st)
{
  for (size_t i = 0; i < t->n; i++) {
    if (!t->s[i] || !pseudo(t->s[i]))
      continue;
    for (size_t k = 0; k < t->nkids[i]; k++) {
      int c = t->kids[i][k];
      const char *src = t->s[c] ? kt_span_tag(t->s[c], SOURCE) : NULL;
      if (!src || pseudo(t->s[c]) || !kt_strfilter_match(&st->filter, src))
        continue;
      collapse_child(st, t->s[i], t->s[c]);
      delete_subtree(t, c);
    }
  }
}

/* Pre-order, so a chain of extracted spans hoists to the first survivor. */
static void extract(struct kt_tree *t, int i, const struct kt_strfilter *f)
{
  struct kt_span *s = t->s[i];
  if (!s)
    return;
  int gone = i != t->root && pseudo(s) && kt_strfilter_match(f, pseudo(s));
  for (size_t k = 0; k < t->nkids[i]; k++) {
    int c = t->kids[i][k];
    if (gone && t->s[c])
      t->s[c]->parent_id = s->parent_id;
    extract(t, c, f);
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

/* Logs whose trace source the filter selects move to one child span per
 * trace source. */
static void group_by_source(struct kt_tree *t, const struct kt_strfilter *f)
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
      if (!src || !kt_strfilter_match(f, src) ||
          (g && strcmp(g->service, src) != 0)) {
        s->logs[keep++] = s->logs[l]; /* other sources: next pass */
        continue;
      }
      if (!g) {
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
      free(lg->msg); /* its type stays in s's strings */
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

/* Whether a step changes the tree's shape (the index must be rebuilt). */
static int reshapes(enum kt_step_kind k)
{
  return k == KT_STEP_PRUNE_CHILDLESS || k == KT_STEP_COLLAPSE ||
         k == KT_STEP_EXTRACT || k == KT_STEP_GROUP;
}

static void run_step(struct kt_tree *t, const struct kt_step *st)
{
  switch (st->kind) {
  case KT_STEP_PRUNE_CHILDLESS:
    prune_childless(t, t->root);
    break;
  case KT_STEP_REPLACE_NAME:
    replace_name(t);
    break;
  case KT_STEP_OBJECT_TAGS:
    object_tags(t, st);
    break;
  case KT_STEP_SVC_OP_REPLACE:
    service_operation(t, st);
    break;
  case KT_STEP_CLUSTER_NAME:
    cluster_prefix(t, t->root, NULL);
    break;
  case KT_STEP_PRUNE_TAGS:
    prune_tags(t);
    break;
  case KT_STEP_COLLAPSE:
    collapse(t, st);
    break;
  case KT_STEP_EXTRACT:
    extract(t, t->root, &st->filter);
    break;
  case KT_STEP_COMPACT:
    compact(t, t->root);
    break;
  case KT_STEP_GROUP:
    /* one pass per trace source: each pass moves one source's logs */
    for (int pass = 0; pass < 8; pass++) {
      size_t before = t->n;
      group_by_source(t, &st->filter);
      if (t->n == before)
        break;
    }
    break;
  }
}

void kt_tree_transform(struct kt_tree *t, const struct kt_mode *m)
{
  if (kt_tree_index(t) < 0)
    return;
  for (size_t i = 0; i < m->nsteps; i++) {
    run_step(t, m->steps[i]);
    if (reshapes(m->steps[i]->kind) && kt_tree_index(t) < 0)
      return;
  }
}
