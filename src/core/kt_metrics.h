/* kt_metrics: a metrics registry (counters, gauges, histograms and summaries
 * with up to 8 labels) rendered in the Prometheus text exposition format 0.0.4.
 *
 * Series are created lazily per label-value tuple and never move or go
 * away until the registry is freed, so hot paths may cache a kt_series
 * pointer and update it lock-free (C11 atomics on a double's bit pattern).
 * Only the lookup (kt_metric_series) takes the metric's mutex.
 *
 * A metric holds at most 1000 series; past that, lookups of new tuples get
 * one shared series whose label values are all "_overflow", and each such
 * lookup counts in kt_metrics_series_overflow_total, so a label with
 * unbounded values cannot exhaust memory.
 *
 * Every function accepts NULL metrics and series and then does nothing (or
 * returns NULL / 0), so a failed registration never crashes a caller.
 * See docs/internals/metrics.md. */
#ifndef KT_METRICS_H
#define KT_METRICS_H
#include <stddef.h>
#include <stdint.h>

enum kt_metric_kind { KT_COUNTER, KT_GAUGE, KT_HISTOGRAM, KT_SUMMARY };

#define KT_METRICS_MAX_LABELS 8
#define KT_METRICS_MAX_SERIES 1000
/* A summary series keeps its last 512 observations for the quantiles. */
#define KT_METRICS_SUMMARY_WINDOW 512

struct kt_metrics;
struct kt_metric;
struct kt_series;

/* The process-wide registry, created on first use, never freed. */
struct kt_metrics *kt_metrics_default(void);
/* A private registry (tests); NULL on ENOMEM. */
struct kt_metrics *kt_metrics_new(void);
/* Frees the registry, its metrics and series (no one may still use them). */
void kt_metrics_free(struct kt_metrics *r);

/* Registers a metric, or returns the one already registered under that name
 * when kind, label names (and, for histograms, bounds) are the same. labels
 * is a NULL-terminated list of at most 8 names, or NULL. Returns NULL when
 * the name is taken by a different definition, when a name is invalid
 * (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]* without a
 * leading "__", no duplicates, no "le" on a histogram), or on ENOMEM.
 * help is copied; the first registration's help text wins. */
struct kt_metric *kt_metrics_counter(struct kt_metrics *r, const char *name,
                                     const char *help,
                                     const char *const *labels);
struct kt_metric *kt_metrics_gauge(struct kt_metrics *r, const char *name,
                                   const char *help, const char *const *labels);
/* bounds: strictly ascending upper bounds (a trailing +Inf is dropped: the
 * +Inf bucket is always there); nbounds 0 = the default seconds buckets
 * .0001 .00025 .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. */
struct kt_metric *kt_metrics_histogram(struct kt_metrics *r, const char *name,
                                       const char *help,
                                       const char *const *labels,
                                       const double *bounds, size_t nbounds);
/* A summary: _sum and _count over all observations, and the quantiles
 * 0.5, 0.9 and 0.99 (nearest rank) over the last KT_METRICS_SUMMARY_WINDOW
 * observations of the series (NaN before the first). No "quantile" label.
 * Each series costs 4 KiB for its window. */
struct kt_metric *kt_metrics_summary(struct kt_metrics *r, const char *name,
                                     const char *help,
                                     const char *const *labels);

/* The series for a label-value tuple: values has as many entries as the
 * metric has labels (a NULL entry means ""), or is NULL for a metric
 * without labels. The pointer stays valid until kt_metrics_free. Returns
 * NULL only for a NULL metric or on ENOMEM. */
struct kt_series *kt_metric_series(struct kt_metric *m,
                                   const char *const *values);
/* Lock-free updates. An update that does not fit the kind is ignored:
 * add is for counters (negative or NaN amounts ignored) and gauges, set for
 * gauges, observe for histograms (v <= bound lands in that bucket) and
 * summaries. */
void kt_series_add(struct kt_series *s, double v);
void kt_series_set(struct kt_series *s, double v);
void kt_series_observe(struct kt_series *s, double v);
/* Counter/gauge value; a histogram's or summary's observation count. */
double kt_series_value(const struct kt_series *s);
/* Cold-path shorthand for kt_series_add(kt_metric_series(m, values), 1). */
void kt_metric_inc(struct kt_metric *m, const char *const *values);

/* The exposition text, malloc'd and NUL-terminated (caller frees); *len
 * (if len) gets its length. Metrics in registration order, series in
 * creation order, the overflow series last. NULL on ENOMEM. */
char *kt_metrics_render(struct kt_metrics *r, size_t *len);
/* Finds the line for exactly `series` (e.g. `x_total{reason="a"}`, or
 * `x_total` for a metric without labels) in exposition text and parses
 * its value into *out. 0, -ENOENT when there is no such line, -EINVAL when
 * its value does not parse. */
int kt_metrics_scrape_value(const char *text, const char *series, double *out);

/* The original's "DeferCount" pair (behaviour spec §3.1): a counter
 * <base>_count and a histogram <base>_histogram of elapsed nanoseconds,
 * same labels. Used for the §3.2 inventory names. */
struct kt_defer {
  struct kt_metric *count, *hist;
};
void kt_defer_register(struct kt_defer *d, const char *base, const char *help,
                       const char *const *labels);
/* Counts one operation that started at start_mono_us (kt_mono_us()). */
void kt_defer_done(struct kt_defer *d, const char *const *values,
                   int64_t start_mono_us);

#endif
