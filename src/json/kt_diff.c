/* kt_diff: see the header. The path is built in one growing buffer shared
 * by the whole recursion (each level appends, then truncates back), so only
 * emitted entries allocate. Object keys are sorted once per object pair by
 * collecting child pointers and merge-walking the two sorted arrays. */
#include "json/kt_diff.h"

#include "core/kt_grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
  char *path;
  size_t len, cap;
  int (*skip)(const char *path, void *ud);
  void *ud;
  struct kt_diff_list *out;
};

void kt_diff_list_init(struct kt_diff_list *l, size_t limit)
{
  memset(l, 0, sizeof *l);
  l->limit = limit ? limit : 10000;
}

void kt_diff_list_free(struct kt_diff_list *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].path);
    cJSON_Delete(l->v[i].old_v);
    cJSON_Delete(l->v[i].new_v);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static int path_reserve(struct ctx *c, size_t add)
{
  if (c->len + add + 1 <= c->cap)
    return 0;
  size_t cap = c->cap ? c->cap * 2 : 256;
  while (cap < c->len + add + 1)
    cap *= 2;
  char *p = realloc(c->path, cap);
  if (!p)
    return -ENOMEM;
  c->path = p;
  c->cap = cap;
  return 0;
}

static int is_plain_key(const char *k)
{
  if (!*k)
    return 0;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
          (*k >= '0' && *k <= '9') || *k == '_'))
      return 0;
  return 1;
}

static int push_key(struct ctx *c, const char *k)
{
  size_t kl = strlen(k);
  if (path_reserve(c, kl * 2 + 5))
    return -ENOMEM;
  if (is_plain_key(k)) {
    if (c->len)
      c->path[c->len++] = '.';
    memcpy(c->path + c->len, k, kl);
    c->len += kl;
  } else {
    c->path[c->len++] = '[';
    c->path[c->len++] = '"';
    for (; *k; k++) {
      if (*k == '"' || *k == '\\')
        c->path[c->len++] = '\\';
      c->path[c->len++] = *k;
    }
    c->path[c->len++] = '"';
    c->path[c->len++] = ']';
  }
  c->path[c->len] = 0;
  return 0;
}

static int push_index(struct ctx *c, int i)
{
  if (path_reserve(c, 16))
    return -ENOMEM;
  c->len += (size_t)snprintf(c->path + c->len, 16, "[%d]", i);
  return 0;
}

static int emit(struct ctx *c, const cJSON *o, const cJSON *n)
{
  struct kt_diff_list *l = c->out;
  if (l->n >= l->limit) {
    l->truncated = 1;
    return 0;
  }
  if (KT_GROW(l->v, l->cap, l->n))
    return -ENOMEM;
  struct kt_diff_entry *e = &l->v[l->n];
  e->path = strdup(c->path ? c->path : "");
  e->old_v = o && !cJSON_IsNull(o) ? cJSON_Duplicate(o, 1) : NULL;
  e->new_v = n && !cJSON_IsNull(n) ? cJSON_Duplicate(n, 1) : NULL;
  if (!e->path) {
    cJSON_Delete(e->old_v);
    cJSON_Delete(e->new_v);
    return -ENOMEM;
  }
  l->n++;
  return 0;
}

static int walk(struct ctx *c, const cJSON *o, const cJSON *n);

static const char *key_of(const cJSON *c)
{
  return c->string ? c->string : "";
}

static int cmp_keys(const void *a, const void *b)
{
  return strcmp(key_of(*(const cJSON *const *)a), key_of(*(const cJSON *const *)b));
}

static const cJSON **sorted_children(const cJSON *obj, size_t *n)
{
  size_t cnt = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, obj) cnt++;
  const cJSON **v = malloc((cnt ? cnt : 1) * sizeof *v);
  if (!v)
    return NULL;
  cnt = 0;
  cJSON_ArrayForEach(it, obj) v[cnt++] = it;
  qsort(v, cnt, sizeof *v, cmp_keys);
  *n = cnt;
  return v;
}

static int child(struct ctx *c, const char *key, const cJSON *o,
                 const cJSON *n)
{
  size_t save = c->len;
  int rc = push_key(c, key);
  if (!rc && !(c->skip && c->skip(c->path, c->ud)))
    rc = walk(c, o, n);
  c->len = save;
  if (c->path)
    c->path[save] = 0;
  return rc;
}

static int walk_objects(struct ctx *c, const cJSON *o, const cJSON *n)
{
  size_t no, nn, i = 0, j = 0;
  const cJSON **a = sorted_children(o, &no), **b = sorted_children(n, &nn);
  int rc = a && b ? 0 : -ENOMEM;
  while (!rc && (i < no || j < nn)) {
    int d = i == no ? 1 : j == nn ? -1 : strcmp(key_of(a[i]), key_of(b[j]));
    if (d < 0) {
      rc = child(c, key_of(a[i]), a[i], NULL);
      i++;
    } else if (d > 0) {
      rc = child(c, key_of(b[j]), NULL, b[j]);
      j++;
    } else {
      rc = child(c, key_of(a[i]), a[i], b[j]);
      i++;
      j++;
    }
  }
  free(a);
  free(b);
  return rc;
}

static int walk_arrays(struct ctx *c, const cJSON *o, const cJSON *n)
{
  const cJSON *x = o->child, *y = n->child;
  int rc = 0;
  for (int i = 0; !rc && (x || y); i++) {
    size_t save = c->len;
    rc = push_index(c, i);
    if (!rc && !(c->skip && c->skip(c->path, c->ud)))
      rc = walk(c, x, y);
    c->len = save;
    c->path[save] = 0;
    x = x ? x->next : NULL;
    y = y ? y->next : NULL;
  }
  return rc;
}

static int walk(struct ctx *c, const cJSON *o, const cJSON *n)
{
  int onull = !o || cJSON_IsNull(o), nnull = !n || cJSON_IsNull(n);
  if (onull || nnull)
    return onull && nnull ? 0 : emit(c, o, n);
  if (cJSON_IsObject(o) && cJSON_IsObject(n))
    return walk_objects(c, o, n);
  if (cJSON_IsArray(o) && cJSON_IsArray(n))
    return walk_arrays(c, o, n);
  if (cJSON_IsString(o) && cJSON_IsString(n))
    return strcmp(o->valuestring, n->valuestring) ? emit(c, o, n) : 0;
  if (cJSON_IsNumber(o) && cJSON_IsNumber(n))
    return o->valuedouble != n->valuedouble ? emit(c, o, n) : 0;
  if (cJSON_IsBool(o) && cJSON_IsBool(n))
    return cJSON_IsTrue(o) != cJSON_IsTrue(n) ? emit(c, o, n) : 0;
  return emit(c, o, n);
}

int kt_diff_compare_skip(const cJSON *old_v, const cJSON *new_v,
                         int (*skip)(const char *path, void *ud), void *ud,
                         struct kt_diff_list *out)
{
  struct ctx c = {NULL, 0, 0, skip, ud, out};
  if (path_reserve(&c, 0))
    return -ENOMEM;
  c.path[0] = 0;
  int rc = walk(&c, old_v, new_v);
  free(c.path);
  return rc;
}

int kt_diff_compare(const cJSON *old_v, const cJSON *new_v,
                    struct kt_diff_list *out)
{
  return kt_diff_compare_skip(old_v, new_v, NULL, NULL, out);
}

char *kt_diff_render(const struct kt_diff_list *l)
{
  size_t len = 0, cap = 256;
  char *b = malloc(cap);
  for (size_t i = 0; b && i <= l->n; i++) {
    char *o = NULL, *n = NULL, line[32];
    const char *text = line;
    if (i == l->n) {
      if (!l->truncated)
        break;
      text = "... (diff truncated)\n";
    } else {
      const struct kt_diff_entry *e = &l->v[i];
      o = e->old_v ? cJSON_PrintUnformatted(e->old_v) : NULL;
      n = e->new_v ? cJSON_PrintUnformatted(e->new_v) : NULL;
    }
    size_t need = i < l->n ? strlen(l->v[i].path) + (o ? strlen(o) : 4) +
                                 (n ? strlen(n) : 4) + 8
                           : strlen(text);
    if (len + need + 1 > cap) {
      while (len + need + 1 > cap)
        cap *= 2;
      char *nb = realloc(b, cap);
      if (!nb) {
        free(b);
        b = NULL;
      }
      b = nb;
    }
    if (b && i < l->n)
      len += (size_t)snprintf(b + len, cap - len, "%s %s -> %s\n",
                              l->v[i].path, o ? o : "null", n ? n : "null");
    else if (b)
      len += (size_t)snprintf(b + len, cap - len, "%s", text);
    free(o);
    free(n);
  }
  if (b)
    b[len] = 0;
  return b;
}

cJSON *kt_diff_to_json(const struct kt_diff_list *l)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(root, "diffs");
  for (size_t i = 0; arr && i < l->n; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "jsonPath", l->v[i].path);
    if (l->v[i].old_v)
      cJSON_AddItemToObject(e, "old", cJSON_Duplicate(l->v[i].old_v, 1));
    if (l->v[i].new_v)
      cJSON_AddItemToObject(e, "new", cJSON_Duplicate(l->v[i].new_v, 1));
    cJSON_AddItemToArray(arr, e);
  }
  return root;
}
