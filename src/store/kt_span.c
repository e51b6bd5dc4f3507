/* kt_span: see kt_span.h. */
#include "store/kt_span.h"

#include "core/kt_grow.h"
#include "core/kt_hex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A span carries ~25 tags: one block for all their strings instead of a
 * malloc and a free for each (a tenth of the consumers' CPU went to the
 * allocator). Replaced or deleted tags leave their bytes until the span is
 * freed. */
struct kt_strblk {
  struct kt_strblk *next;
  size_t used, cap;
  char b[];
};

#define STRBLK_MIN 2048

static char *span_strdup(struct kt_span *s, const char *str)
{
  size_t n = strlen(str) + 1;
  struct kt_strblk *b = s->_strs;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > STRBLK_MIN ? n : STRBLK_MIN;
    if (!(b = malloc(sizeof *b + cap)))
      return NULL;
    b->next = s->_strs;
    b->used = 0;
    b->cap = cap;
    s->_strs = b;
  }
  char *d = memcpy(b->b + b->used, str, n);
  b->used += n;
  return d;
}

struct kt_span *kt_span_new(const char *service, const char *operation)
{
  struct kt_span *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->service = strdup(service ? service : "");
  s->operation = strdup(operation ? operation : "");
  if (!s->service || !s->operation) {
    kt_span_free(s);
    return NULL;
  }
  return s;
}

void kt_span_free(struct kt_span *s)
{
  if (!s)
    return;
  for (size_t i = 0; i < s->nlogs; i++) {
    free(s->logs[i].msg);
    for (size_t j = 0; j < s->logs[i].nfields; j++) {
      free(s->logs[i].fields[j].key);
      free(s->logs[i].fields[j].value);
    }
    free(s->logs[i].fields);
  }
  free(s->tags);
  free(s->logs);
  free(s->service);
  free(s->operation);
  for (struct kt_strblk *b = s->_strs, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(s);
}

struct kt_span *kt_span_clone(const struct kt_span *s)
{
  struct kt_span *c = kt_span_new(s->service, s->operation);
  if (!c)
    return NULL;
  memcpy(c->trace_id, s->trace_id, 16);
  c->span_id = s->span_id;
  c->parent_id = s->parent_id;
  c->start_us = s->start_us;
  c->end_us = s->end_us;
  for (size_t i = 0; i < s->ntags; i++)
    if (kt_span_add_tag(c, s->tags[i].key, s->tags[i].value))
      goto fail;
  for (size_t i = 0; i < s->nlogs; i++) {
    const struct kt_log *l = &s->logs[i];
    if (l->nfields) {
      struct kt_tag *f = calloc(l->nfields, sizeof *f);
      if (!f)
        goto fail;
      for (size_t j = 0; j < l->nfields; j++) {
        f[j].key = strdup(l->fields[j].key);
        f[j].value = strdup(l->fields[j].value);
      }
      if (kt_span_add_log_fields(c, l->ts_us, f, l->nfields))
        goto fail;
    } else if (kt_span_add_log(c, l->ts_us, l->type, l->msg)) {
      goto fail;
    }
  }
  return c;
fail:
  kt_span_free(c);
  return NULL;
}

int kt_span_add_tag(struct kt_span *s, const char *key, const char *value)
{
  if (KT_GROW(s->tags, s->_tags_cap, s->ntags))
    return -ENOMEM;
  char *k = span_strdup(s, key), *v = k ? span_strdup(s, value ? value : "") : NULL;
  if (!v)
    return -ENOMEM;
  s->tags[s->ntags].key = k;
  s->tags[s->ntags].value = v;
  s->ntags++;
  return 0;
}

int kt_span_set_tag(struct kt_span *s, const char *key, const char *value)
{
  for (size_t i = 0; i < s->ntags; i++) {
    if (strcmp(s->tags[i].key, key) == 0) {
      char *v = span_strdup(s, value ? value : "");
      if (!v)
        return -ENOMEM;
      s->tags[i].value = v;
      return 0;
    }
  }
  return kt_span_add_tag(s, key, value);
}

int kt_span_add_log_owned(struct kt_span *s, int64_t ts_us, const char *type,
                          char *msg)
{
  if (KT_GROW(s->logs, s->_logs_cap, s->nlogs)) {
    free(msg);
    return -ENOMEM;
  }
  char *t = span_strdup(s, type ? type : "");
  if (!t) {
    free(msg);
    return -ENOMEM;
  }
  memset(&s->logs[s->nlogs], 0, sizeof s->logs[0]);
  s->logs[s->nlogs].ts_us = ts_us;
  s->logs[s->nlogs].type = t;
  s->logs[s->nlogs].msg = msg;
  s->nlogs++;
  return 0;
}

int kt_span_add_log_fields(struct kt_span *s, int64_t ts_us,
                           struct kt_tag *fields, size_t n)
{
  char *empty = strdup("");
  if (!empty || kt_span_add_log_owned(s, ts_us, "", empty)) {
    for (size_t i = 0; i < n; i++) {
      free(fields[i].key);
      free(fields[i].value);
    }
    free(fields);
    return -ENOMEM;
  }
  s->logs[s->nlogs - 1].fields = fields;
  s->logs[s->nlogs - 1].nfields = n;
  return 0;
}

const char *kt_log_field(const struct kt_log *l, const char *key)
{
  for (size_t i = 0; i < l->nfields; i++)
    if (strcmp(l->fields[i].key, key) == 0)
      return l->fields[i].value;
  return NULL;
}

void kt_span_del_tag(struct kt_span *s, const char *key)
{
  for (size_t i = 0; i < s->ntags; i++) {
    if (strcmp(s->tags[i].key, key) == 0) {
      memmove(&s->tags[i], &s->tags[i + 1],
              (s->ntags - i - 1) * sizeof s->tags[0]);
      s->ntags--;
      return;
    }
  }
}

int kt_span_add_log(struct kt_span *s, int64_t ts_us, const char *type,
                    const char *msg)
{
  char *m = strdup(msg ? msg : "");
  if (!m)
    return -ENOMEM;
  return kt_span_add_log_owned(s, ts_us, type, m);
}

/* Called ~10 times per stored span over ~25 tags: the first byte rules
 * most out without a call. */
const char *kt_span_tag(const struct kt_span *s, const char *key)
{
  for (size_t i = 0; i < s->ntags; i++)
    if (s->tags[i].key[0] == key[0] && strcmp(s->tags[i].key, key) == 0)
      return s->tags[i].value;
  return NULL;
}

int kt_span_vec_push(struct kt_span_vec *v, struct kt_span *s)
{
  if (KT_GROW(v->v, v->cap, v->n))
    return -ENOMEM;
  v->v[v->n++] = s;
  return 0;
}

void kt_span_vec_free(struct kt_span_vec *v)
{
  for (size_t i = 0; i < v->n; i++)
    kt_span_free(v->v[i]);
  free(v->v);
  v->v = NULL;
  v->n = v->cap = 0;
}

void kt_trace_id_hex(const uint8_t id[16], char out[33])
{
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = hx[id[i] >> 4];
    out[2 * i + 1] = hx[id[i] & 15];
  }
  out[32] = 0;
}

int kt_trace_id_parse(const char *hex, uint8_t id[16])
{
  if (!hex || strlen(hex) != 32)
    return -EINVAL;
  for (int i = 0; i < 16; i++) {
    int a = kt_hexval(hex[2 * i]), b = kt_hexval(hex[2 * i + 1]);
    if (a < 0 || b < 0)
      return -EINVAL;
    id[i] = (uint8_t)(a << 4 | b);
  }
  return 0;
}

void kt_span_id_hex(uint64_t id, char out[17])
{
  snprintf(out, 17, "%016llx", (unsigned long long)id);
}

static __thread uint64_t rng_state;

uint64_t kt_random_u64(void)
{
  while (!rng_state) {
    if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state)
      rng_state = (uint64_t)(uintptr_t)&rng_state ^ 0x9e3779b97f4a7c15ull;
  }
  /* xorshift64*: ids need uniqueness, not secrecy. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 0x2545F4914F6CDD1Dull;
  return r ? r : 1;
}

void kt_random_trace_id(uint8_t id[16])
{
  uint64_t a = kt_random_u64(), b = kt_random_u64();
  memcpy(id, &a, 8);
  memcpy(id + 8, &b, 8);
}
