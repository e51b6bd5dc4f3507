/* kt_assemble: see the header. */
#include "frontend/kt_assemble.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/kt_store.h"

#define MAX_OBJECTS 256

/* Zeroed first: keys are compared and hashed as whole strings only, but
 * no stale bytes should ever ride along. */
static void set_key(struct kt_objkey *k, const char *const v[5])
{
  memset(k, 0, sizeof *k);
  snprintf(k->cluster, sizeof k->cluster, "%.63s", v[0]);
  snprintf(k->group, sizeof k->group, "%.127s", v[1]);
  snprintf(k->resource, sizeof k->resource, "%.127s", v[2]);
  snprintf(k->ns, sizeof k->ns, "%.255s", v[3]);
  snprintf(k->name, sizeof k->name, "%.255s", v[4]);
}

int kt_objkey_parse(const char *s, struct kt_objkey *k)
{
  char *parts[5], buf[900];
  snprintf(buf, sizeof buf, "%s", s);
  char *p = buf;
  for (int i = 0; i < 5; i++) {
    parts[i] = p;
    char *slash = i < 4 ? strchr(p, '/') : NULL;
    if (i < 4 && !slash)
      return -EINVAL;
    if (slash) {
      *slash = 0;
      p = slash + 1;
    }
  }
  set_key(k, (const char *const *)parts);
  return 0;
}

void kt_objkey_format(const struct kt_objkey *k, char *buf, size_t len)
{
  snprintf(buf, len, "%s/%s/%s/%s/%s", k->cluster, k->group, k->resource,
           k->ns, k->name);
}

struct obj {
  struct kt_objkey key;
  struct kt_tree t;
  uint64_t root_id;
  int64_t root_start, root_end;
  struct kt_link_path path; /* how it was reached */
  int attached;
};

struct edge {
  int parent, child;
  char cls[64];
};

struct graph {
  struct obj *o[MAX_OBJECTS];
  int n;
  struct edge *e;
  int ne, cap;
};

/* Loads every window of the object overlapping [start, end]. */
static int fetch(struct kt_store *st, const struct kt_assemble_opts *o,
                 const struct kt_objkey *k, int64_t start, int64_t end,
                 struct kt_tree *t)
{
  struct kt_store_query q = {0};
  struct kt_trace_ref *refs = NULL;
  size_t n = 0;
  q.cluster = k->cluster;
  q.group = k->group;
  q.resource = k->resource;
  q.namespace = k->ns;
  q.name = k->name;
  q.service = "object";
  q.start_us = start - o->window_us;
  q.end_us = end;
  q.limit = 1000;
  if (kt_store_find(st, &q, &refs, &n))
    return -EIO;
  for (size_t i = 0; i < n; i++) {
    struct kt_span_vec v = {0};
    if (refs[i].end_us < start || kt_store_get_trace(st, refs[i].trace_id, &v))
      continue;
    for (size_t j = 0; j < v.n; j++)
      kt_tree_add(t, v.v[j]);
    free(v.v);
  }
  free(refs);
  kt_tree_merge_roots(t);
  return kt_tree_index(t) >= 0 ? 0 : -ENOENT;
}

static int same_key(const struct kt_objkey *a, const struct kt_objkey *b)
{
  return !strcmp(a->cluster, b->cluster) && !strcmp(a->group, b->group) &&
         !strcmp(a->resource, b->resource) && !strcmp(a->ns, b->ns) &&
         !strcmp(a->name, b->name);
}

static int find_obj(const struct graph *g, const struct kt_objkey *k)
{
  for (int i = 0; i < g->n; i++)
    if (same_key(&g->o[i]->key, k))
      return i;
  return -1;
}

static int add_obj(struct kt_store *st, const struct kt_assemble_opts *o,
                   struct graph *g, const struct kt_objkey *k, int64_t start,
                   int64_t end)
{
  if (g->n >= MAX_OBJECTS)
    return -ENOSPC;
  struct obj *ob = calloc(1, sizeof *ob);
  if (!ob)
    return -ENOMEM;
  ob->key = *k;
  kt_tree_init(&ob->t);
  int rc = fetch(st, o, k, start, end, &ob->t);
  if (rc) {
    kt_tree_free(&ob->t);
    free(ob);
    return rc == -EIO ? -EIO : -ENOENT;
  }
  struct kt_span *r = ob->t.s[ob->t.root];
  ob->root_id = r->span_id;
  ob->root_start = r->start_us;
  ob->root_end = r->end_us;
  g->o[g->n++] = ob;
  return g->n - 1;
}

static void add_edge(struct graph *g, int parent, int child, const char *cls)
{
  for (int i = 0; i < g->ne; i++)
    if (g->e[i].parent == parent && g->e[i].child == child)
      return;
  if (g->ne == g->cap) {
    int cap = g->cap ? g->cap * 2 : 16;
    struct edge *e = realloc(g->e, (size_t)cap * sizeof *e);
    if (!e)
      return;
    g->e = e;
    g->cap = cap;
  }
  g->e[g->ne].parent = parent;
  g->e[g->ne].child = child;
  snprintf(g->e[g->ne].cls, sizeof g->e[0].cls, "%s", cls ? cls : "");
  g->ne++;
}

static void link_target(const struct kt_span *s, struct kt_objkey *k)
{
  const char *v[5] = {kt_span_tag(s, "linkedCluster"), kt_span_tag(s, "linkedGroup"),
                      kt_span_tag(s, "linkedResource"), kt_span_tag(s, "linkedNamespace"),
                      kt_span_tag(s, "linkedName")};
  for (int i = 0; i < 5; i++)
    v[i] = v[i] ? v[i] : "";
  set_key(k, v);
}

/* Breadth-first over links from object 0, within the selector and budget.*/
static void key_parts(const struct kt_objkey *k, const char *out[5])
{
  out[0] = k->cluster;
  out[1] = k->group;
  out[2] = k->resource;
  out[3] = k->ns;
  out[4] = k->name;
}

static void follow(struct kt_store *st, const struct kt_assemble_opts *o,
                   struct graph *g, const struct kt_mode *m, int64_t start,
                   int64_t end)
{
  int budget = o->follow_limit;
  for (int i = 0; i < g->n; i++) {
    struct obj *ob = g->o[i];
    struct kt_tree *t = &ob->t;
    int root = kt_tree_find(t, ob->root_id);
    for (size_t k = 0; root >= 0 && k < t->nkids[root]; k++) {
      const struct kt_span *s = t->s[t->kids[root][k]];
      const char *role = s ? kt_span_tag(s, "linkRole") : NULL;
      if (!role || strcmp(s->service, "link") != 0)
        continue;
      int up = strcmp(role, "parent") == 0;
      const char *cls = kt_span_tag(s, "linkClass");
      struct kt_objkey target;
      link_target(s, &target);
      int j = find_obj(g, &target);
      if (j < 0) {
        const char *me[5], *other[5];
        key_parts(&ob->key, me);
        key_parts(&target, other);
        if (budget <= 0 || !kt_mode_admit(m, &ob->path, up ? other : me,
                                          up ? me : other, up, cls))
          continue;
        budget--;
        j = add_obj(st, o, g, &target, start, end);
        if (j < 0)
          continue;
        g->o[j]->path.first = ob->path.first ? ob->path.first : (up ? 1 : -1);
        g->o[j]->path.ups = ob->path.ups + up;
        g->o[j]->path.downs = ob->path.downs + !up;
      }
      add_edge(g, up ? j : i, up ? i : j, cls);
    }
  }
}

static int top_of(const struct graph *g, int from)
{
  int cur = from, steps = 0;
  for (;;) {
    int next = -1;
    for (int i = 0; i < g->ne && next < 0; i++)
      if (g->e[i].child == cur)
        next = g->e[i].parent;
    if (next < 0 || ++steps > g->n)
      return cur;
    cur = next;
  }
}

static struct kt_span *virtual_span(const struct obj *parent, const char *cls)
{
  struct kt_span *v = kt_span_new(cls, "");
  if (!v)
    return NULL;
  v->span_id = kt_random_u64();
  v->parent_id = parent->root_id;
  v->start_us = parent->root_start;
  v->end_us = parent->root_end;
  kt_span_add_tag(v, "zzz-traceSource", "object");
  kt_span_add_tag(v, "zzz-pseudoType", "linkClass");
  return v;
}

/* Depth first from the top object along child edges. */
static void attach(struct graph *g, int i, struct kt_tree *out)
{
  struct obj *p = g->o[i];
  p->attached = 1;
  kt_tree_absorb(out, &p->t);
  for (int e = 0; e < g->ne; e++) {
    if (g->e[e].parent != i || g->o[g->e[e].child]->attached)
      continue;
    struct obj *c = g->o[g->e[e].child];
    int root = kt_tree_find(&c->t, c->root_id);
    if (root < 0)
      continue;
    uint64_t under = p->root_id;
    if (g->e[e].cls[0]) {
      struct kt_span *v = virtual_span(p, g->e[e].cls);
      if (v) {
        under = v->span_id;
        kt_tree_add(out, v);
      }
    }
    c->t.s[root]->parent_id = under;
    attach(g, g->e[e].child, out);
  }
}

int kt_assemble(struct kt_store *st, const struct kt_assemble_opts *o,
                const struct kt_objkey *key, int64_t start, int64_t end,
                const struct kt_mode *m, struct kt_tree *out)
{
  struct graph g = {0};
  int rc = add_obj(st, o, &g, key, start, end);
  if (rc < 0)
    return rc == -EIO ? -EIO : -ENOENT; /* -EIO: the store cannot answer */
  follow(st, o, &g, m, start, end);
  attach(&g, top_of(&g, 0), out);
  for (int i = 0; i < g.n; i++) {
    kt_tree_free(&g.o[i]->t);
    free(g.o[i]);
  }
  free(g.e);
  kt_tree_clip(out, start, end);
  if (kt_tree_index(out) < 0)
    return -ENOENT;
  kt_tree_transform(out, m);
  return kt_tree_index(out) >= 0 ? 0 : -ENOENT;
}
