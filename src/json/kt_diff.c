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
#include "core/kt_swar.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The type tests inline: cJSON_Is* are library calls, and the walk makes
 * several per node. */
#define TYPE(x) ((x)->type & 0xFF)

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
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i].path);
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
    char tmp[16], *d = tmp + sizeof tmp;
    unsigned v = (unsigned)s->index;
    *--d = ']';
    do
      *--d = (char)('0' + v % 10);
    while (v /= 10);
    *--d = '[';
    size_t n = (size_t)(tmp + sizeof tmp - d);
    if (b)
      memcpy(b, d, n);
    return n;
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
  e->old_v = o && TYPE(o) != cJSON_NULL ? o : NULL;
  e->new_v = n && TYPE(n) != cJSON_NULL ? n : NULL;
  if (!e->path)
    return -ENOMEM;
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
  int onull = !o || TYPE(o) == cJSON_NULL, nnull = !n || TYPE(n) == cJSON_NULL;
  if (onull || nnull)
    return onull && nnull ? 0 : emit(c, o, n);
  int t = TYPE(o);
  if (t != TYPE(n) && !((t | TYPE(n)) == (cJSON_True | cJSON_False)))
    return emit(c, o, n);
  switch (t) {
  case cJSON_Object:
    return walk_objects(c, o, n);
  case cJSON_Array:
    return walk_arrays(c, o, n);
  case cJSON_String:
    return o->valuestring && n->valuestring &&
                   strcmp(o->valuestring, n->valuestring) == 0
               ? 0
               : emit(c, o, n);
  case cJSON_Number:
    return o->valuedouble != n->valuedouble ? emit(c, o, n) : 0;
  case cJSON_True:
  case cJSON_False:
    return t != TYPE(n) ? emit(c, o, n) : 0;
  default: /* raw: not produced by parsing */
    return emit(c, o, n);
  }
}

int kt_diff_compare(const cJSON *old_v, const cJSON *new_v,
                    struct kt_diff_list *out)
{
  struct ctx c = {NULL, 0, 0, out};
  int rc = walk(&c, old_v, new_v);
  free(c.stack);
  return rc;
}

/* A growing output buffer; a failed growth sticks (b = NULL). */
struct out {
  char *b;
  size_t len, cap;
};

static char *room(struct out *o, size_t n)
{
  if (o->b && o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    while (o->len + n + 1 > cap)
      cap *= 2;
    char *nb = realloc(o->b, cap);
    if (!nb)
      free(o->b);
    o->b = nb;
    o->cap = cap;
  }
  return o->b ? o->b + o->len : NULL;
}

static void put(struct out *o, const char *s, size_t n)
{
  char *d = room(o, n);
  if (d) {
    memcpy(d, s, n);
    o->len += n;
  }
}

/* Whether one of the 8 bytes of w must be escaped: a control (< 0x20), a
 * quote or a backslash (UTF-8 bytes, >= 0x80, never). */
static int needs_escape(uint64_t w)
{
  return (kt_swar_below(w, 0x20) | kt_swar_eq(w, '"') | kt_swar_eq(w, '\\')) != 0;
}

/* The end of the run of bytes at p (n of them to the NUL) that print as
 * they are; 8 at a time, since diffs carry long annotations. */
static const unsigned char *plain_run(const unsigned char *p, size_t n)
{
  const unsigned char *end = p + n;
  for (uint64_t w; end - p >= 8; p += 8) {
    memcpy(&w, p, 8);
    if (needs_escape(w))
      break;
  }
  while (*p >= 32 && *p != '"' && *p != '\\')
    p++;
  return p;
}

/* A JSON string as cJSON prints it: " \ and controls escaped, the rest
 * (UTF-8 included) as is. */
static void put_string(struct out *o, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(s);
  char *d = room(o, n * 6 + 2);
  if (!d)
    return;
  char *start = d;
  *d++ = '"';
  const unsigned char *end = (const unsigned char *)s + n;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    /* a plain run, copied at once */
    const unsigned char *q = plain_run(p, (size_t)(end - p));
    memcpy(d, p, (size_t)(q - p));
    d += q - p;
    p = q;
    unsigned char ch = *p;
    if (!ch)
      break;
    *d++ = '\\';
    switch (ch) {
    case '"': *d++ = '"'; break;
    case '\\': *d++ = '\\'; break;
    case '\b': *d++ = 'b'; break;
    case '\f': *d++ = 'f'; break;
    case '\n': *d++ = 'n'; break;
    case '\r': *d++ = 'r'; break;
    case '\t': *d++ = 't'; break;
    default:
      memcpy(d, "u00", 3);
      d[3] = hex[ch >> 4];
      d[4] = hex[ch & 15];
      d += 5;
    }
  }
  *d++ = '"';
  o->len += (size_t)(d - start);
}

/* An int in decimal ("%d" without vfprintf, which costs more than the
 * rest of a diff line). */
static void put_int(struct out *o, int i)
{
  char num[16], *d = num + sizeof num;
  unsigned u = i < 0 ? 0u - (unsigned)i : (unsigned)i;
  do
    *--d = (char)('0' + u % 10);
  while (u /= 10);
  if (i < 0)
    *--d = '-';
  put(o, d, (size_t)(num + sizeof num - d));
}

/* Strings, integers and literals written here; other values (objects,
 * arrays, fractions) printed by cJSON, whose output this must equal. */
static void put_value(struct out *o, const cJSON *v)
{
  if (!v) {
    put(o, "null", 4);
  } else if (cJSON_IsString(v) && v->valuestring) {
    put_string(o, v->valuestring);
  } else if (cJSON_IsBool(v)) {
    cJSON_IsTrue(v) ? put(o, "true", 4) : put(o, "false", 5);
  } else if (cJSON_IsNumber(v) && v->valuedouble == (double)v->valueint &&
             (v->valueint || !signbit(v->valuedouble))) { /* -0 prints "-0" */
    put_int(o, v->valueint);
  } else {
    char *text = cJSON_PrintUnformatted(v);
    if (text)
      put(o, text, strlen(text));
    else
      free(o->b), o->b = NULL;
    free(text);
  }
}

char *kt_diff_render(const struct kt_diff_list *l)
{
  struct out o = {malloc(256), 0, 256};
  for (size_t i = 0; i < l->n; i++) {
    const struct kt_diff_entry *e = &l->v[i];
    put(&o, e->path, strlen(e->path));
    put(&o, " ", 1);
    put_value(&o, e->old_v);
    put(&o, " -> ", 4);
    put_value(&o, e->new_v);
    put(&o, "\n", 1);
  }
  if (l->truncated)
    put(&o, "... (diff truncated)\n", 21);
  if (o.b)
    o.b[o.len] = 0;
  return o.b;
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
