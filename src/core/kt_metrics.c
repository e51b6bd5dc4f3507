/* kt_metrics: see the header. */
#include "core/kt_metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 8
#define MAX_SERIES 1000

static const double default_bounds[] = {.0001, .00025, .0005, .001, .0025,
                                        .005,  .01,    .025,  .05,  .1,
                                        .25,   .5,     1,     2.5,  5, 10};

struct kt_series {
  struct kt_series *next;
  struct kt_metric *m;
  char **values;
  _Atomic uint64_t v;      /* double bits: counter/gauge value, or sum */
  _Atomic uint64_t count;  /* histogram */
  _Atomic uint64_t *buckets;
};

struct kt_metric {
  struct kt_metric *next;
  enum kt_metric_kind kind;
  char *name, *help;
  char *labels[MAX_LABELS];
  int nlabels;
  double *bounds;
  size_t nbounds;
  pthread_mutex_t mu;
  struct kt_series *series, *tail, *overflow;
  size_t nseries;
  struct kt_metrics *r;
};

struct kt_metrics {
  pthread_mutex_t mu;
  struct kt_metric *head, *tail;
  struct kt_metric *overflow_total;
};

static double bits_to_d(uint64_t b)
{
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

static uint64_t d_to_bits(double d)
{
  uint64_t b;
  memcpy(&b, &d, sizeof b);
  return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
  uint64_t old = atomic_load(p);
  while (!atomic_compare_exchange_weak(p, &old, d_to_bits(bits_to_d(old) + v)))
    ;
}

struct kt_metrics *kt_metrics_new(void)
{
  struct kt_metrics *r = calloc(1, sizeof *r);
  if (r)
    pthread_mutex_init(&r->mu, NULL);
  return r;
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static struct kt_metrics *default_registry;

static void make_default(void)
{
  default_registry = kt_metrics_new();
}

struct kt_metrics *kt_metrics_default(void)
{
  pthread_once(&default_once, make_default);
  return default_registry;
}

static void free_series(struct kt_series *s, int nlabels)
{
  for (int i = 0; i < nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free((void *)s->buckets);
  free(s);
}

void kt_metrics_free(struct kt_metrics *r)
{
  if (!r)
    return;
  for (struct kt_metric *m = r->head, *nm; m; m = nm) {
    nm = m->next;
    for (struct kt_series *s = m->series, *ns; s; s = ns) {
      ns = s->next;
      free_series(s, m->nlabels);
    }
    if (m->overflow)
      free_series(m->overflow, m->nlabels);
    for (int i = 0; i < m->nlabels; i++)
      free(m->labels[i]);
    free(m->name);
    free(m->help);
    free(m->bounds);
    pthread_mutex_destroy(&m->mu);
    free(m);
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static struct kt_metric *find(struct kt_metrics *r, const char *name)
{
  for (struct kt_metric *m = r->head; m; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

static struct kt_metric *new_metric(enum kt_metric_kind kind, const char *name,
                                    const char *help, const char *const *labels,
                                    const double *bounds, size_t nbounds)
{
  struct kt_metric *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->kind = kind;
  m->name = strdup(name);
  m->help = strdup(help ? help : "");
  for (; labels && labels[m->nlabels] && m->nlabels < MAX_LABELS; m->nlabels++)
    m->labels[m->nlabels] = strdup(labels[m->nlabels]);
  if (kind == KT_HISTOGRAM) {
    if (!nbounds) {
      bounds = default_bounds;
      nbounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    m->bounds = malloc(nbounds * sizeof *m->bounds);
    if (m->bounds)
      memcpy(m->bounds, bounds, nbounds * sizeof *bounds);
    m->nbounds = nbounds;
  }
  pthread_mutex_init(&m->mu, NULL);
  return m;
}

static struct kt_metric *reg(struct kt_metrics *r, enum kt_metric_kind kind,
                             const char *name, const char *help,
                             const char *const *labels, const double *bounds,
                             size_t nbounds)
{
  if (!r)
    return NULL;
  pthread_mutex_lock(&r->mu);
  struct kt_metric *m = find(r, name);
  if (m) {
    pthread_mutex_unlock(&r->mu);
    return m->kind == kind ? m : NULL;
  }
  m = new_metric(kind, name, help, labels, bounds, nbounds);
  if (m) {
    m->r = r;
    if (r->tail)
      r->tail->next = m;
    else
      r->head = m;
    r->tail = m;
  }
  pthread_mutex_unlock(&r->mu);
  return m;
}

struct kt_metric *kt_metrics_counter(struct kt_metrics *r, const char *name,
                                     const char *help, const char *const *labels)
{
  return reg(r, KT_COUNTER, name, help, labels, NULL, 0);
}

struct kt_metric *kt_metrics_gauge(struct kt_metrics *r, const char *name,
                                   const char *help, const char *const *labels)
{
  return reg(r, KT_GAUGE, name, help, labels, NULL, 0);
}

struct kt_metric *kt_metrics_histogram(struct kt_metrics *r, const char *name,
                                       const char *help,
                                       const char *const *labels,
                                       const double *bounds, size_t nbounds)
{
  return reg(r, KT_HISTOGRAM, name, help, labels, bounds, nbounds);
}

static int same_values(const struct kt_series *s, const char *const *values,
                       int n)
{
  for (int i = 0; i < n; i++)
    if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
      return 0;
  return 1;
}

static struct kt_series *new_series(struct kt_metric *m,
                                    const char *const *values)
{
  struct kt_series *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->m = m;
  s->values = calloc((size_t)m->nlabels + 1, sizeof *s->values);
  for (int i = 0; i < m->nlabels; i++)
    s->values[i] = strdup(values && values[i] ? values[i] : "");
  if (m->kind == KT_HISTOGRAM)
    s->buckets = calloc(m->nbounds, sizeof *s->buckets);
  return s;
}

static struct kt_series *overflow_series(struct kt_metric *m)
{
  static const char *const ov[MAX_LABELS] = {
      "_overflow", "_overflow", "_overflow", "_overflow",
      "_overflow", "_overflow", "_overflow", "_overflow"};
  if (!m->overflow)
    m->overflow = new_series(m, ov);
  return m->overflow;
}

struct kt_series *kt_metric_series(struct kt_metric *m,
                                   const char *const *values)
{
  static const char *const none[MAX_LABELS] = {0};
  if (!values)
    values = none;
  pthread_mutex_lock(&m->mu);
  for (struct kt_series *s = m->series; s; s = s->next) {
    if (same_values(s, values, m->nlabels)) {
      pthread_mutex_unlock(&m->mu);
      return s;
    }
  }
  struct kt_series *s;
  if (m->nseries >= MAX_SERIES) {
    s = overflow_series(m);
    pthread_mutex_unlock(&m->mu);
    struct kt_metric *o = kt_metrics_counter(
        m->r, "kt_metrics_series_overflow_total",
        "Updates sent to a metric's _overflow series (too many label values)",
        NULL);
    if (o && o != m)
      kt_series_add(kt_metric_series(o, NULL), 1);
    return s;
  }
  s = new_series(m, values);
  if (s) {
    if (m->tail)
      m->tail->next = s;
    else
      m->series = s;
    m->tail = s;
    m->nseries++;
  } else {
    s = overflow_series(m);
  }
  pthread_mutex_unlock(&m->mu);
  return s;
}

void kt_series_add(struct kt_series *s, double v)
{
  if (s)
    atomic_add_double(&s->v, v);
}

void kt_series_set(struct kt_series *s, double v)
{
  if (s)
    atomic_store(&s->v, d_to_bits(v));
}

void kt_series_observe(struct kt_series *s, double v)
{
  if (!s || !s->buckets)
    return;
  const struct kt_metric *m = s->m;
  for (size_t i = 0; i < m->nbounds; i++)
    if (v <= m->bounds[i]) {
      atomic_fetch_add(&s->buckets[i], 1);
      break;
    }
  atomic_fetch_add(&s->count, 1);
  atomic_add_double(&s->v, v);
}

double kt_series_value(const struct kt_series *s)
{
  if (!s)
    return 0;
  if (s->m->kind == KT_HISTOGRAM)
    return (double)atomic_load(&s->count);
  return bits_to_d(atomic_load(&s->v));
}

void kt_metric_inc(struct kt_metric *m, const char *const *values)
{
  if (m)
    kt_series_add(kt_metric_series(m, values), 1);
}

/* A growable text buffer; on ENOMEM it marks itself failed. */
struct out {
  char *b;
  size_t len, cap;
  int failed;
};

static void outf(struct out *o, const char *fmt, ...)
{
  va_list ap;
  for (;;) {
    size_t room = o->cap - o->len;
    va_start(ap, fmt);
    int n = vsnprintf(o->b ? o->b + o->len : NULL, o->b ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0 || o->failed) {
      o->failed = 1;
      return;
    }
    if ((size_t)n < room) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = (o->cap ? o->cap * 2 : 8192) + (size_t)n;
    char *b = realloc(o->b, cap);
    if (!b) {
      o->failed = 1;
      return;
    }
    o->b = b;
    o->cap = cap;
  }
}

static void out_escaped(struct out *o, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\')
      outf(o, "\\\\");
    else if (*s == '"')
      outf(o, "\\\"");
    else if (*s == '\n')
      outf(o, "\\n");
    else
      outf(o, "%c", *s);
  }
}

static void out_num(struct out *o, double v)
{
  if (isinf(v))
    outf(o, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15)
    outf(o, "%.0f", v);
  else
    outf(o, "%.17g", v);
}

/* name{l1="v1",...[,le="x"]} */
static void out_labels(struct out *o, const struct kt_metric *m,
                       const struct kt_series *s, const char *le)
{
  if (!m->nlabels && !le)
    return;
  outf(o, "{");
  for (int i = 0; i < m->nlabels; i++) {
    outf(o, "%s%s=\"", i ? "," : "", m->labels[i]);
    out_escaped(o, s->values[i]);
    outf(o, "\"");
  }
  if (le)
    outf(o, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  outf(o, "}");
}

static void render_series(struct out *o, const struct kt_metric *m,
                          const struct kt_series *s)
{
  if (m->kind != KT_HISTOGRAM) {
    outf(o, "%s", m->name);
    out_labels(o, m, s, NULL);
    outf(o, " ");
    out_num(o, bits_to_d(atomic_load(&s->v)));
    outf(o, "\n");
    return;
  }
  uint64_t cum = 0;
  char le[64];
  for (size_t i = 0; i < m->nbounds; i++) {
    cum += atomic_load(&s->buckets[i]);
    snprintf(le, sizeof le, "%g", m->bounds[i]);
    outf(o, "%s_bucket", m->name);
    out_labels(o, m, s, le);
    outf(o, " %llu\n", (unsigned long long)cum);
  }
  uint64_t count = atomic_load(&s->count);
  outf(o, "%s_bucket", m->name);
  out_labels(o, m, s, "+Inf");
  outf(o, " %llu\n%s_sum", (unsigned long long)count, m->name);
  out_labels(o, m, s, NULL);
  outf(o, " ");
  out_num(o, bits_to_d(atomic_load(&s->v)));
  outf(o, "\n%s_count", m->name);
  out_labels(o, m, s, NULL);
  outf(o, " %llu\n", (unsigned long long)count);
}

char *kt_metrics_render(struct kt_metrics *r, size_t *len)
{
  static const char *kinds[] = {"counter", "gauge", "histogram"};
  struct out o = {0};
  outf(&o, "");
  pthread_mutex_lock(&r->mu);
  for (struct kt_metric *m = r->head; m; m = m->next) {
    outf(&o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
         kinds[m->kind]);
    pthread_mutex_lock(&m->mu);
    for (struct kt_series *s = m->series; s; s = s->next)
      render_series(&o, m, s);
    if (m->overflow)
      render_series(&o, m, m->overflow);
    pthread_mutex_unlock(&m->mu);
  }
  pthread_mutex_unlock(&r->mu);
  if (o.failed) {
    free(o.b);
    return NULL;
  }
  if (len)
    *len = o.len;
  return o.b;
}

int kt_metrics_scrape_value(const char *text, const char *series, double *out)
{
  size_t n = strlen(series);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ') {
      *out = strtod(p + n + 1, NULL);
      return 0;
    }
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return -ENOENT;
}
