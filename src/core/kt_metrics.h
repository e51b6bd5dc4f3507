/* kt_metrics: a metrics registry (counters, gauges, histograms with
 * labels) rendered in the Prometheus text format 0.0.4.
 *
 * Series are created lazily per label-value tuple and never move, so hot
 * paths may cache a kt_series pointer and update it lock-free (C11 atomics
 * on a double's bits). A metric holds at most 1000 series; past that, values
 * go to one "_overflow" series and kt_metrics_series_overflow_total counts
 * them, so a label with unbounded values cannot exhaust memory. */
#ifndef KT_METRICS_H
#define KT_METRICS_H
#include <stddef.h>

enum kt_metric_kind { KT_COUNTER, KT_GAUGE, KT_HISTOGRAM };

struct kt_metrics;
struct kt_metric;
struct kt_series;

/* The process-wide registry, created on first use. */
struct kt_metrics *kt_metrics_default(void);
struct kt_metrics *kt_metrics_new(void);
void kt_metrics_free(struct kt_metrics *r);

/* Registers (or returns the already registered) metric. labels is a
 * NULL-terminated list of at most 8 names, or NULL. Returns NULL when the
 * name is taken by another kind, or on ENOMEM. */
struct kt_metric *kt_metrics_counter(struct kt_metrics *r, const char *name,
                                     const char *help,
                                     const char *const *labels);
struct kt_metric *kt_metrics_gauge(struct kt_metrics *r, const char *name,
                                   const char *help, const char *const *labels);
/* bounds ascending; nbounds 0 = default seconds buckets. */
struct kt_metric *kt_metrics_histogram(struct kt_metrics *r, const char *name,
                                       const char *help,
                                       const char *const *labels,
                                       const double *bounds, size_t nbounds);

/* values: as many as the metric's labels (NULL when it has none). Never
 * NULL for a non-NULL metric. */
struct kt_series *kt_metric_series(struct kt_metric *m,
                                   const char *const *values);
void kt_series_add(struct kt_series *s, double v);     /* counter, gauge */
void kt_series_set(struct kt_series *s, double v);     /* gauge */
void kt_series_observe(struct kt_series *s, double v); /* histogram */
double kt_series_value(const struct kt_series *s);     /* histogram: count */
/* Cold-path shorthand for kt_series_add(kt_metric_series(m, values), 1).
 * A NULL metric is ignored. */
void kt_metric_inc(struct kt_metric *m, const char *const *values);

/* The exposition text, malloc'd (caller frees); NULL on ENOMEM. */
char *kt_metrics_render(struct kt_metrics *r, size_t *len);
/* Finds the exact series line `series` (e.g. `x_total{reason="a"}`) in
 * exposition text and parses its value. 0 or -ENOENT. */
int kt_metrics_scrape_value(const char *text, const char *series, double *out);

#endif
