/* kt_diff: see the header.
 *
 * The walk keeps a stack of path segments (key pointers or indexes) and
 * renders a path only when it emits an entry, so equal subtrees cost no
 * string work. Objects are walked in document order when both sides have
 * the same keys in the same order (the usual case: one serializer wrote
 * both versions); the entries each key produced are then reordered by key,
 * which gives the byte order of keys the spec asks for without sorting
 * every object. Otherwise the children are sorted and merge-walked. */
#include "json/kt_diff.h"

#include "core/kt_grow.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seg {
  const char *key; /* NULL: an array index */
  int index;
};

struct ctx {
  struct seg *stack;
  size_t depth, cap;
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

/* Writes segment s at b (NULL: only measures); returns its length. */
static size_t render_seg(char *b, const struct seg *s, int first)
{
  if (!s->key) {
    char tmp[16];
    int n = snprintf(tmp, sizeof tmp, "[%d]", s->index);
    if (b)
      memcpy(b, tmp, (size_t)n);
    return (size_t)n;
  }
  size_t n = 0;
  if (is_plain_key(s->key)) {
    size_t kl = strlen(s->key);
    if (!first && b)
      b[n] = '.';
    n += !first;
    if (b)
      memcpy(b + n, s->key, kl);
    return n + kl;
  }
  if (b)
    b[n] = '[', b[n + 1] = '"';
  n += 2;
  for (const char *k = s->key; *k; k++) {
    if (*k == '"' || *k == '\\') {
      if (b)
        b[n] = '\\';
      n++;
    }
    if (b)
      b[n] = *k;
    n++;
  }
  if (b)
    b[n] = '"', b[n + 1] = ']';
  return n + 2;
}

static char *render_path(const struct ctx *c)
{
  size_t len = 0;
  for (size_t i = 0; i < c->depth; i++)
    len += render_seg(NULL, &c->stack[i], i == 0);
  char *p = malloc(len + 1);
  if (!p)
    return NULL;
  len = 0;
  for (size_t i = 0; i < c->depth; i++)
    len += render_seg(p + len, &c->stack[i], i == 0);
  p[len] = 0;
  return p;
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
  e->path = render_path(c);
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

/* Walks o -> n one level down, under the segment (key, index). */
static int child(struct ctx *c, const char *key, int index, const cJSON *o,
                 const cJSON *n)
{
  if (KT_GROW(c->stack, c->cap, c->depth))
    return -ENOMEM;
  c->stack[c->depth++] = (struct seg){key, index};
  int rc = walk(c, o, n);
  c->depth--;
  return rc;
}

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

static int walk_sorted(struct ctx *c, const cJSON *o, const cJSON *n)
{
  size_t no, nn, i = 0, j = 0;
  const cJSON **a = sorted_children(o, &no), **b = sorted_children(n, &nn);
  int rc = a && b ? 0 : -ENOMEM;
  while (!rc && (i < no || j < nn)) {
    int d = i == no ? 1 : j == nn ? -1 : strcmp(key_of(a[i]), key_of(b[j]));
    const cJSON *x = d <= 0 ? a[i++] : NULL, *y = d >= 0 ? b[j++] : NULL;
    rc = child(c, key_of(x ? x : y), 0, x, y);
  }
  free(a);
  free(b);
  return rc;
}

/* The entries one key of an object produced: out->v[from, to). */
struct block {
  const char *key;
  size_t from, to;
};

static int cmp_blocks(const void *a, const void *b)
{
  return strcmp(((const struct block *)a)->key, ((const struct block *)b)->key);
}

/* Puts the blocks (contiguous, in document order) into key order. */
static int reorder(struct kt_diff_list *l, struct block *bl, size_t nb)
{
  size_t first = bl[0].from, total = bl[nb - 1].to - first, k = 0;
  struct kt_diff_entry *tmp = malloc(total * sizeof *tmp);
  if (!tmp)
    return -ENOMEM;
  qsort(bl, nb, sizeof *bl, cmp_blocks);
  for (size_t i = 0; i < nb; i++)
    for (size_t j = bl[i].from; j < bl[i].to; j++)
      tmp[k++] = l->v[j];
  memcpy(l->v + first, tmp, total * sizeof *tmp);
  free(tmp);
  return 0;
}

static int walk_lockstep(struct ctx *c, const cJSON *o, const cJSON *n)
{
  struct block *bl = NULL;
  size_t nb = 0, cap = 0;
  int rc = 0, sorted = 1;
  for (const cJSON *x = o->child, *y = n->child; !rc && x; x = x->next, y = y->next) {
    size_t before = c->out->n;
    rc = child(c, key_of(x), 0, x, y);
    if (rc || c->out->n == before)
      continue;
    if (KT_GROW(bl, cap, nb)) {
      rc = -ENOMEM;
      break;
    }
    bl[nb] = (struct block){key_of(x), before, c->out->n};
    sorted = sorted && (nb == 0 || strcmp(bl[nb - 1].key, bl[nb].key) < 0);
    nb++;
  }
  if (!rc && !sorted)
    rc = reorder(c->out, bl, nb);
  free(bl);
  return rc;
}

static int walk_objects(struct ctx *c, const cJSON *o, const cJSON *n)
{
  const cJSON *x = o->child, *y = n->child;
  while (x && y && !strcmp(key_of(x), key_of(y)))
    x = x->next, y = y->next;
  return !x && !y ? walk_lockstep(c, o, n) : walk_sorted(c, o, n);
}

static int walk_arrays(struct ctx *c, const cJSON *o, const cJSON *n)
{
  const cJSON *x = o->child, *y = n->child;
  int rc = 0;
  for (int i = 0; !rc && (x || y); i++) {
    rc = child(c, NULL, i, x, y);
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

int kt_diff_compare(const cJSON *old_v, const cJSON *new_v,
                    struct kt_diff_list *out)
{
  struct ctx c = {NULL, 0, 0, out};
  int rc = walk(&c, old_v, new_v);
  free(c.stack);
  return rc;
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
