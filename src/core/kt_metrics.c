/* kt_metrics: the metrics registry and its Prometheus text rendering.
 *
 * Layout: a registry is a mutex-guarded list of metrics (registration
 * order); a metric is a mutex-guarded list of series (creation order) plus
 * an optional overflow series. Series values are doubles kept as bit
 * patterns in _Atomic uint64_t and updated by CAS; histogram buckets are
 * plain atomic counts (not cumulative, the last one is +Inf), summed into
 * cumulative form when rendered, so _bucket{le="+Inf"} and _count always
 * agree within a scrape. A summary series uses the same array as
 * [0] = observation count, then a ring of the last observations (double
 * bits, written at count % window); quantiles are computed when rendered.
 *
 * Lock order: registry mutex, then a metric's mutex. kt_metric_series never
 * holds a metric's mutex while it takes the registry's (overflow counting
 * registers its counter after unlocking). */
#include "core/kt_metrics.h"

#include "core/kt_time.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS KT_METRICS_MAX_LABELS
#define MAX_SERIES KT_METRICS_MAX_SERIES
#define WINDOW KT_METRICS_SUMMARY_WINDOW
#define OVERFLOW_VALUE "_overflow"
#define OVERFLOW_NAME "kt_metrics_series_overflow_total"
#define OVERFLOW_HELP \
  "Series lookups sent to a metric's _overflow series (label value limit)"

static const double default_bounds[] = {.0001, .00025, .0005, .001, .0025,
                                        .005,  .01,    .025,  .05,  .1,
                                        .25,   .5,     1,     2.5,  5, 10};

struct kt_series {
  struct kt_series *next;
  const struct kt_metric *m;
  enum kt_metric_kind kind;
  uint64_t hash;             /* of the label values, to skip strcmp */
  char **values;             /* m->nlabels copies */
  _Atomic uint64_t v;        /* double bits: value, or histogram/summary sum */
  _Atomic uint64_t buckets[]; /* histogram: nbounds + 1, last is +Inf;
                               * summary: count, then WINDOW samples */
};

struct kt_metric {
  struct kt_metric *next;
  struct kt_metrics *r;
  enum kt_metric_kind kind;
  char *name, *help;
  int nlabels;
  char *labels[MAX_LABELS];
  size_t nbounds;
  double *bounds;
  pthread_mutex_t mu; /* guards the series list and overflow */
  struct kt_series *head, *tail, *overflow;
  size_t nseries;
};

struct kt_metrics {
  pthread_mutex_t mu; /* guards the metric list */
  struct kt_metric *head, *tail;
};

/* ---- atomics on doubles ---- */

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
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  uint64_t want = d_to_bits(bits_to_d(old) + v);
  while (!atomic_compare_exchange_weak_explicit(
      p, &old, want, memory_order_relaxed, memory_order_relaxed))
    want = d_to_bits(bits_to_d(old) + v);
}

static double load_double(const _Atomic uint64_t *p)
{
  return bits_to_d(atomic_load_explicit(p, memory_order_relaxed));
}

/* ---- registry ---- */

/* strdup without relying on POSIX extensions. */
static char *copy_str(const char *s)
{
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c)
    memcpy(c, s, n);
  return c;
}


struct kt_metrics *kt_metrics_new(void)
{
  struct kt_metrics *r = calloc(1, sizeof *r);
  if (!r)
    return NULL;
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
  if (!s)
    return;
  for (int i = 0; s->values && i < nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free(s);
}

static void free_metric(struct kt_metric *m)
{
  struct kt_series *s = m->head;
  while (s) {
    struct kt_series *next = s->next;
    free_series(s, m->nlabels);
    s = next;
  }
  free_series(m->overflow, m->nlabels);
  for (int i = 0; i < m->nlabels; i++)
    free(m->labels[i]);
  free(m->name);
  free(m->help);
  free(m->bounds);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

void kt_metrics_free(struct kt_metrics *r)
{
  if (!r)
    return;
  struct kt_metric *m = r->head;
  while (m) {
    struct kt_metric *next = m->next;
    free_metric(m);
    m = next;
  }
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* ---- validation ---- */

static int is_alpha_(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* [a-zA-Z_(:)][a-zA-Z0-9_(:)]* */
static int valid_name(const char *s, int colon)
{
  if (!s || !*s)
    return 0;
  for (const char *p = s; *p; p++) {
    int ok = is_alpha_(*p) || (colon && *p == ':') || (p != s && is_digit(*p));
    if (!ok)
      return 0;
  }
  return 1;
}

static int count_labels(const char *const *labels)
{
  int n = 0;
  while (labels && labels[n] && n <= MAX_LABELS)
    n++;
  return n;
}

static int valid_labels(enum kt_metric_kind kind, const char *const *labels,
                        int n)
{
  if (n > MAX_LABELS)
    return 0;
  for (int i = 0; i < n; i++) {
    if (!valid_name(labels[i], 0) || strncmp(labels[i], "__", 2) == 0)
      return 0;
    if (kind == KT_HISTOGRAM && strcmp(labels[i], "le") == 0)
      return 0;
    if (kind == KT_SUMMARY && strcmp(labels[i], "quantile") == 0)
      return 0;
    for (int j = 0; j < i; j++)
      if (strcmp(labels[i], labels[j]) == 0)
        return 0;
  }
  return 1;
}

/* Drops a trailing +Inf; 0 unless strictly ascending finite bounds. */
static int check_bounds(const double *b, size_t *n)
{
  if (*n && isinf(b[*n - 1]) && b[*n - 1] > 0)
    (*n)--;
  for (size_t i = 0; i < *n; i++) {
    if (!isfinite(b[i]) || (i && !(b[i] > b[i - 1])))
      return 0;
  }
  return 1;
}

/* ---- series ---- */

static const char *value_at(const char *const *values, int i)
{
  return values && values[i] ? values[i] : "";
}

/* FNV-1a 64 over the values, each with its NUL as separator. */
static uint64_t hash_values(const char *const *values, int n)
{
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < n; i++) {
    const char *p = value_at(values, i);
    do {
      h ^= (unsigned char)*p;
      h *= 1099511628211ull;
    } while (*p++);
  }
  return h;
}

static int same_values(const struct kt_series *s, const char *const *values,
                       int n)
{
  for (int i = 0; i < n; i++)
    if (strcmp(s->values[i], value_at(values, i)) != 0)
      return 0;
  return 1;
}

static struct kt_series *new_series(const struct kt_metric *m,
                                    const char *const *values, uint64_t hash)
{
  size_t nb = m->kind == KT_HISTOGRAM ? m->nbounds + 1
               : m->kind == KT_SUMMARY ? 1 + (size_t)WINDOW : 0;
  struct kt_series *s = calloc(1, sizeof *s + nb * sizeof s->buckets[0]);
  if (!s)
    return NULL;
  s->m = m;
  s->kind = m->kind;
  s->hash = hash;
  s->values = calloc((size_t)m->nlabels + 1, sizeof *s->values);
  if (!s->values) {
    free(s);
    return NULL;
  }
  for (int i = 0; i < m->nlabels; i++) {
    s->values[i] = copy_str(value_at(values, i));
    if (!s->values[i]) {
      free_series(s, i);
      return NULL;
    }
  }
  return s;
}

/* ---- registration ---- */

static struct kt_metric *find_metric(struct kt_metrics *r, const char *name)
{
  for (struct kt_metric *m = r->head; m; m = m->next)
    if (strcmp(m->name, name) == 0)
      return m;
  return NULL;
}

/* The registration request, validated. */
struct def {
  enum kt_metric_kind kind;
  const char *name, *help;
  const char *const *labels;
  int nlabels;
  const double *bounds;
  size_t nbounds;
};

static int same_def(const struct kt_metric *m, const struct def *d)
{
  if (m->kind != d->kind || m->nlabels != d->nlabels)
    return 0;
  for (int i = 0; i < d->nlabels; i++)
    if (strcmp(m->labels[i], d->labels[i]) != 0)
      return 0;
  if (m->nbounds != d->nbounds)
    return 0;
  for (size_t i = 0; i < d->nbounds; i++)
    if (m->bounds[i] != d->bounds[i])
      return 0;
  return 1;
}

static int copy_def(struct kt_metric *m, const struct def *d)
{
  m->kind = d->kind;
  m->name = copy_str(d->name);
  m->help = copy_str(d->help ? d->help : "");
  if (!m->name || !m->help)
    return -ENOMEM;
  for (; d->labels && m->nlabels < d->nlabels; m->nlabels++) {
    m->labels[m->nlabels] = copy_str(d->labels[m->nlabels]);
    if (!m->labels[m->nlabels])
      return -ENOMEM;
  }
  m->nbounds = d->nbounds;
  if (!d->nbounds)
    return 0;
  m->bounds = malloc(d->nbounds * sizeof *m->bounds);
  if (!m->bounds)
    return -ENOMEM;
  memcpy(m->bounds, d->bounds, d->nbounds * sizeof *m->bounds);
  return 0;
}

static struct kt_metric *new_metric(struct kt_metrics *r, const struct def *d)
{
  struct kt_metric *m = calloc(1, sizeof *m);
  if (!m)
    return NULL;
  m->r = r;
  pthread_mutex_init(&m->mu, NULL);
  if (copy_def(m, d) != 0) {
    free_metric(m);
    return NULL;
  }
  /* Without labels the one series exists from the start: it renders as 0
   * before the first update instead of being absent. */
  if (m->nlabels == 0) {
    m->head = m->tail = new_series(m, NULL, hash_values(NULL, 0));
    m->nseries = m->head ? 1 : 0;
  }
  return m;
}

static void append_metric(struct kt_metrics *r, struct kt_metric *m)
{
  if (r->tail)
    r->tail->next = m;
  else
    r->head = m;
  r->tail = m;
}

static struct kt_metric *reg(struct kt_metrics *r, struct def *d)
{
  if (!r || !valid_name(d->name, 1))
    return NULL;
  d->nlabels = count_labels(d->labels);
  if (!valid_labels(d->kind, d->labels, d->nlabels))
    return NULL;
  if (d->kind == KT_HISTOGRAM && !d->nbounds) {
    d->bounds = default_bounds;
    d->nbounds = sizeof default_bounds / sizeof default_bounds[0];
  }
  if (d->nbounds && (!d->bounds || !check_bounds(d->bounds, &d->nbounds)))
    return NULL;
  pthread_mutex_lock(&r->mu);
  struct kt_metric *m = find_metric(r, d->name);
  if (m && !same_def(m, d))
    m = NULL;
  else if (!m) {
    m = new_metric(r, d);
    if (m)
      append_metric(r, m);
  }
  pthread_mutex_unlock(&r->mu);
  return m;
}

struct kt_metric *kt_metrics_counter(struct kt_metrics *r, const char *name,
                                     const char *help, const char *const *labels)
{
  struct def d = {KT_COUNTER, name, help, labels, 0, NULL, 0};
  return reg(r, &d);
}

struct kt_metric *kt_metrics_gauge(struct kt_metrics *r, const char *name,
                                   const char *help, const char *const *labels)
{
  struct def d = {KT_GAUGE, name, help, labels, 0, NULL, 0};
  return reg(r, &d);
}

struct kt_metric *kt_metrics_histogram(struct kt_metrics *r, const char *name,
                                       const char *help,
                                       const char *const *labels,
                                       const double *bounds, size_t nbounds)
{
  struct def d = {KT_HISTOGRAM, name, help, labels, 0, bounds, nbounds};
  return reg(r, &d);
}

struct kt_metric *kt_metrics_summary(struct kt_metrics *r, const char *name,
                                     const char *help,
                                     const char *const *labels)
{
  struct def d = {KT_SUMMARY, name, help, labels, 0, NULL, 0};
  return reg(r, &d);
}

/* ---- series lookup ---- */

static struct kt_series *find_series(const struct kt_metric *m,
                                     const char *const *values, uint64_t hash)
{
  for (struct kt_series *s = m->head; s; s = s->next)
    if (s->hash == hash && same_values(s, values, m->nlabels))
      return s;
  return NULL;
}

static struct kt_series *overflow_series(struct kt_metric *m)
{
  static const char *const ov[MAX_LABELS] = {
      OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE,
      OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE};
  if (!m->overflow)
    m->overflow = new_series(m, ov, 0);
  return m->overflow;
}

static void append_series(struct kt_metric *m, struct kt_series *s)
{
  if (m->tail)
    m->tail->next = s;
  else
    m->head = s;
  m->tail = s;
  m->nseries++;
}

/* Under m->mu: the existing or a new series; NULL when the limit is hit. */
static struct kt_series *lookup_locked(struct kt_metric *m,
                                       const char *const *values)
{
  uint64_t hash = hash_values(values, m->nlabels);
  struct kt_series *s = find_series(m, values, hash);
  if (s || m->nseries >= MAX_SERIES)
    return s;
  s = new_series(m, values, hash);
  if (s)
    append_series(m, s);
  return s;
}

static void count_overflow(struct kt_metrics *r)
{
  struct kt_metric *o = kt_metrics_counter(r, OVERFLOW_NAME, OVERFLOW_HELP,
                                           NULL);
  kt_series_add(kt_metric_series(o, NULL), 1);
}

struct kt_series *kt_metric_series(struct kt_metric *m,
                                   const char *const *values)
{
  if (!m)
    return NULL;
  pthread_mutex_lock(&m->mu);
  struct kt_series *s = lookup_locked(m, values);
  int overflowed = s == NULL && m->nseries >= MAX_SERIES;
  if (overflowed)
    s = overflow_series(m);
  pthread_mutex_unlock(&m->mu);
  if (overflowed)
    count_overflow(m->r);
  return s;
}

/* ---- updates ---- */

void kt_series_add(struct kt_series *s, double v)
{
  if (!s || s->kind == KT_HISTOGRAM)
    return;
  if (s->kind == KT_COUNTER && !(v >= 0))
    return;
  atomic_add_double(&s->v, v);
}

void kt_series_set(struct kt_series *s, double v)
{
  if (s && s->kind == KT_GAUGE)
    atomic_store_explicit(&s->v, d_to_bits(v), memory_order_relaxed);
}

/* Index of the first bound >= v, or nbounds (+Inf; also NaN). */
static size_t bucket_of(const struct kt_metric *m, double v)
{
  size_t lo = 0, hi = m->nbounds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= m->bounds[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  return isnan(v) ? m->nbounds : lo;
}

/* Summary: the sample goes into the ring slot its count picks. A scrape
 * racing this may read the slot's previous sample: quantiles are over
 * "about" the last WINDOW observations, which is what they promise. */
static void summary_observe(struct kt_series *s, double v)
{
  uint64_t n = atomic_fetch_add_explicit(&s->buckets[0], 1,
                                         memory_order_relaxed);
  atomic_store_explicit(&s->buckets[1 + n % WINDOW], d_to_bits(v),
                        memory_order_relaxed);
  atomic_add_double(&s->v, v);
}

void kt_series_observe(struct kt_series *s, double v)
{
  if (s && s->kind == KT_SUMMARY) {
    summary_observe(s, v);
    return;
  }
  if (!s || s->kind != KT_HISTOGRAM)
    return;
  atomic_fetch_add_explicit(&s->buckets[bucket_of(s->m, v)], 1,
                            memory_order_relaxed);
  atomic_add_double(&s->v, v);
}

static uint64_t hist_count(const struct kt_series *s)
{
  if (s->kind == KT_SUMMARY)
    return atomic_load_explicit(&s->buckets[0], memory_order_relaxed);
  uint64_t n = 0;
  for (size_t i = 0; i <= s->m->nbounds; i++)
    n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
  return n;
}

double kt_series_value(const struct kt_series *s)
{
  if (!s)
    return 0;
  if (s->kind == KT_HISTOGRAM || s->kind == KT_SUMMARY)
    return (double)hist_count(s);
  return load_double(&s->v);
}

void kt_metric_inc(struct kt_metric *m, const char *const *values)
{
  if (m)
    kt_series_add(kt_metric_series(m, values), 1);
}

/* ---- rendering ---- */

/* A growable text buffer; on ENOMEM it marks itself failed. */
struct out {
  char *b;
  size_t len, cap;
  int failed;
};

static void out_mem(struct out *o, const char *s, size_t n)
{
  if (o->failed)
    return;
  if (o->len + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (o->len + n + 1 > cap)
      cap *= 2;
    char *b = realloc(o->b, cap);
    if (!b) {
      o->failed = 1;
      return;
    }
    o->b = b;
    o->cap = cap;
  }
  memcpy(o->b + o->len, s, n);
  o->len += n;
  o->b[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
  out_mem(o, s, strlen(s));
}

/* Escapes \ and newline; also " inside label values. */
static void out_escaped(struct out *o, const char *s, int quote)
{
  for (const char *p = s; *p; p++) {
    if (*p == '\\')
      out_str(o, "\\\\");
    else if (*p == '\n')
      out_str(o, "\\n");
    else if (*p == '"' && quote)
      out_str(o, "\\\"");
    else
      out_mem(o, p, 1);
  }
}

/* Shortest clean form: 42, 0.25, 1e+20, NaN, +Inf; always round-trips. */
static void fmt_num(char *buf, size_t n, double v)
{
  if (isnan(v))
    snprintf(buf, n, "NaN");
  else if (isinf(v))
    snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
  else if (v == 0)
    snprintf(buf, n, "0");
  else if (v == trunc(v) && fabs(v) < 1e15)
    snprintf(buf, n, "%.0f", v);
  else {
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v)
      snprintf(buf, n, "%.17g", v);
  }
}

static void out_num(struct out *o, double v)
{
  char buf[40];
  fmt_num(buf, sizeof buf, v);
  out_str(o, buf);
}

static void out_u64(struct out *o, uint64_t v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  out_str(o, buf);
}

/* name+suffix{l1="v1",...[,le="x"]} and the space before the value; the
 * extra label is quantile="x" for summaries. */
static void out_series_name(struct out *o, const struct kt_metric *m,
                            const char *suffix, const struct kt_series *s,
                            const char *le)
{
  const char *extra = m->kind == KT_SUMMARY ? "quantile=\"" : "le=\"";
  out_str(o, m->name);
  out_str(o, suffix);
  if (m->nlabels || le)
    out_str(o, "{");
  for (int i = 0; i < m->nlabels; i++) {
    out_str(o, i ? "," : "");
    out_str(o, m->labels[i]);
    out_str(o, "=\"");
    out_escaped(o, s->values[i], 1);
    out_str(o, "\"");
  }
  if (le) {
    out_str(o, m->nlabels ? "," : "");
    out_str(o, extra);
    out_str(o, le);
    out_str(o, "\"");
  }
  out_str(o, m->nlabels || le ? "} " : " ");
}

/* The _sum and _count lines histograms and summaries end with. */
static void render_sum_count(struct out *o, const struct kt_metric *m,
                             const struct kt_series *s, uint64_t count)
{
  out_series_name(o, m, "_sum", s, NULL);
  out_num(o, load_double(&s->v));
  out_str(o, "\n");
  out_series_name(o, m, "_count", s, NULL);
  out_u64(o, count);
  out_str(o, "\n");
}

static void render_histogram(struct out *o, const struct kt_metric *m,
                             const struct kt_series *s)
{
  uint64_t cum = 0;
  char le[40];
  for (size_t i = 0; i <= m->nbounds; i++) {
    cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    if (i < m->nbounds)
      fmt_num(le, sizeof le, m->bounds[i]);
    out_series_name(o, m, "_bucket", s, i < m->nbounds ? le : "+Inf");
    out_u64(o, cum);
    out_str(o, "\n");
  }
  render_sum_count(o, m, s, cum);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* Quantiles by nearest rank over the window's samples (NaN excluded). */
static void render_summary(struct out *o, const struct kt_metric *m,
                           const struct kt_series *s)
{
  static const double qs[] = {0.5, 0.9, 0.99};
  static const char *const qnames[] = {"0.5", "0.9", "0.99"};
  double w[WINDOW];
  uint64_t count = hist_count(s);
  size_t n = 0, have = count < WINDOW ? (size_t)count : WINDOW;
  for (size_t i = 0; i < have; i++) {
    double v = bits_to_d(atomic_load_explicit(&s->buckets[1 + i],
                                              memory_order_relaxed));
    if (!isnan(v))
      w[n++] = v;
  }
  qsort(w, n, sizeof w[0], cmp_double);
  for (size_t q = 0; q < 3; q++) {
    out_series_name(o, m, "", s, qnames[q]);
    if (n) {
      size_t rank = (size_t)ceil(qs[q] * (double)n);
      out_num(o, w[rank ? rank - 1 : 0]);
    } else {
      out_num(o, NAN);
    }
    out_str(o, "\n");
  }
  render_sum_count(o, m, s, count);
}

static void render_series(struct out *o, const struct kt_metric *m,
                          const struct kt_series *s)
{
  if (m->kind == KT_HISTOGRAM) {
    render_histogram(o, m, s);
    return;
  }
  if (m->kind == KT_SUMMARY) {
    render_summary(o, m, s);
    return;
  }
  out_series_name(o, m, "", s, NULL);
  out_num(o, load_double(&s->v));
  out_str(o, "\n");
}

static void render_metric(struct out *o, struct kt_metric *m)
{
  static const char *const kinds[] = {"counter", "gauge", "histogram",
                                      "summary"};
  out_str(o, "# HELP ");
  out_str(o, m->name);
  out_str(o, " ");
  out_escaped(o, m->help, 0);
  out_str(o, "\n# TYPE ");
  out_str(o, m->name);
  out_str(o, " ");
  out_str(o, kinds[m->kind]);
  out_str(o, "\n");
  pthread_mutex_lock(&m->mu);
  for (const struct kt_series *s = m->head; s; s = s->next)
    render_series(o, m, s);
  if (m->overflow)
    render_series(o, m, m->overflow);
  pthread_mutex_unlock(&m->mu);
}

char *kt_metrics_render(struct kt_metrics *r, size_t *len)
{
  if (!r)
    return NULL;
  struct out o = {0};
  out_mem(&o, "", 0); /* an empty registry renders as "", not NULL */
  pthread_mutex_lock(&r->mu);
  for (struct kt_metric *m = r->head; m; m = m->next)
    render_metric(&o, m);
  pthread_mutex_unlock(&r->mu);
  if (o.failed) {
    free(o.b);
    return NULL;
  }
  if (len)
    *len = o.len;
  return o.b;
}

/* ---- scraping (tests) ---- */

static int parse_value(const char *p, double *out)
{
  while (*p == ' ' || *p == '\t')
    p++;
  char *end;
  double v = strtod(p, &end);
  if (end == p || (*end && *end != ' ' && *end != '\n' && *end != '\r'))
    return -EINVAL;
  *out = v;
  return 0;
}

int kt_metrics_scrape_value(const char *text, const char *series, double *out)
{
  if (!text || !series || !*series || !out)
    return -EINVAL;
  size_t n = strlen(series);
  const char *p = text;
  while (p && *p) {
    if (strncmp(p, series, n) == 0 && (p[n] == ' ' || p[n] == '\t'))
      return parse_value(p + n, out);
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  return -ENOENT;
}

/* ---- DeferCount (§3.1) ---------------------------------------------------- */

static const double defer_ns_bounds[] = {1e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7,
                                         2.5e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 5e9, 1e10,
                                         6e10};

void kt_defer_register(struct kt_defer *d, const char *base, const char *help,
                       const char *const *labels)
{
  char name[128];
  struct kt_metrics *r = kt_metrics_default();
  snprintf(name, sizeof name, "%s_count", base);
  d->count = kt_metrics_counter(r, name, help, labels);
  snprintf(name, sizeof name, "%s_histogram", base);
  d->hist = kt_metrics_histogram(r, name, help, labels, defer_ns_bounds,
                                 sizeof defer_ns_bounds / sizeof defer_ns_bounds[0]);
}

void kt_defer_done(struct kt_defer *d, const char *const *values,
                   int64_t start_mono_us)
{
  kt_series_add(kt_metric_series(d->count, values), 1);
  kt_series_observe(kt_metric_series(d->hist, values),
                    (double)(kt_mono_us() - start_mono_us) * 1000.0);
}
