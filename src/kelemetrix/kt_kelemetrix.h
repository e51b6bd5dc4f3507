/* kt_kelemetrix: Prometheus metrics derived from audit events (behaviour
 * spec §3.3). A TOML file (the original's hack/kelemetrix.toml format,
 * see examples/kelemetrix.toml) lists metrics; each has a quantifier
 * (request_count, request_latency, mq_latency, request_latency_ratio),
 * label tags, tag filters and quantity filters. The consumer hands every
 * audit event to kt_kelemetrix_observe before its own filter; each metric
 * whose quantity exists and whose filters pass updates
 * <name>_count (counter), <name>_histogram or <name>_summary.
 *
 * Loading is strict: any unknown key, table, tag, quantifier or operator,
 * a bad regex, a duplicate metric name or a syntax error fails with
 * "path:line: reason". See docs/internals/kelemetrix.md. */
#ifndef KT_KELEMETRIX_H
#define KT_KELEMETRIX_H
#include <stddef.h>
#include <stdint.h>

struct kt_audit_event;
struct kt_metrics;
struct kt_kelemetrix;

struct kt_kelemetrix_opts {
  /* --kube-request-timeout: "cluster=duration,..." (NULL or "" = none);
   * request_latency_ratio's timeout when the URI has no timeoutSeconds.
   * Clusters not listed get 60 s. */
  const char *request_timeouts;
  int log_tags, log_quantities; /* --kelemetrix-debug-log-* */
  struct kt_metrics *registry;  /* NULL = kt_metrics_default(); borrowed */
};

/* Reads and loads the config file at path (see kt_kelemetrix_load). */
int kt_kelemetrix_open(const char *path, const struct kt_kelemetrix_opts *o,
                       struct kt_kelemetrix **out, char *err, size_t errlen);
/* Loads a config from text (len bytes); path only names it in errors.
 * Registers every metric in the registry. 0 and *out (free with
 * kt_kelemetrix_free), or -EINVAL / -ENOMEM with a one-line reason in
 * err, "path:line: reason" whenever a line is to blame. */
int kt_kelemetrix_load(const char *text, size_t len, const char *path,
                       const struct kt_kelemetrix_opts *o,
                       struct kt_kelemetrix **out, char *err, size_t errlen);
/* Frees the config; the registered metrics stay in their registry. */
void kt_kelemetrix_free(struct kt_kelemetrix *k);
/* Number of metrics loaded. */
size_t kt_kelemetrix_count(const struct kt_kelemetrix *k);

/* Updates the metrics for one event; apiserver is the address the event
 * came from (the apiserverAddr tag, may be NULL). Thread-safe: any number
 * of consumer workers call it at once. Never fails. */
void kt_kelemetrix_observe(struct kt_kelemetrix *k,
                           const struct kt_audit_event *ev,
                           const char *apiserver);
/* The same with "now" given (µs since the epoch), for mq_latency. */
void kt_kelemetrix_observe_at(struct kt_kelemetrix *k,
                              const struct kt_audit_event *ev,
                              const char *apiserver, int64_t now_us);

/* The value of one tag for an event, into buf (truncated to len).
 * 0, or -ENOENT for an unknown tag name. For tests and tools. */
int kt_kelemetrix_tag(const struct kt_audit_event *ev, const char *apiserver,
                      const char *tag, char *buf, size_t len);
/* The value of one quantifier: 1 with *out, 0 when the event has none,
 * -ENOENT for an unknown name. k may be NULL (no cluster timeouts). */
int kt_kelemetrix_quantity(const struct kt_kelemetrix *k,
                           const struct kt_audit_event *ev,
                           const char *quantifier, int64_t now_us,
                           double *out);

#endif
