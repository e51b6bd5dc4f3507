/* kt_roles: see the header. */
#include "ops/kt_roles.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core/kt_metrics.h"

static const char *const names[KT_C_COUNT] = {
    [KT_C_WEBHOOK] = "audit-webhook",
    [KT_C_PRODUCER] = "audit-producer",
    [KT_C_MQ] = "audit-queue",
    [KT_C_CONSUMER] = "audit-consumer",
    [KT_C_EVENT_INFORMER] = "event-informer",
    [KT_C_DIFF_CONTROLLER] = "diff-controller",
    [KT_C_DIFF_DECORATOR] = "diff-decorator",
    [KT_C_AGGREGATOR] = "aggregator",
    [KT_C_SPAN_CACHE] = "span-cache",
    [KT_C_DIFF_CACHE] = "diff-cache",
    [KT_C_STORE] = "span-store",
    [KT_C_OTLP] = "otlp-exporter",
    [KT_C_QUERY] = "jaeger-query",
    [KT_C_TRACE_CACHE] = "trace-cache",
    [KT_C_METRICS] = "metrics",
    [KT_C_KELEMETRIX] = "kelemetrix",
};

const char *kt_component_name(enum kt_component c)
{
  return c < KT_C_COUNT ? names[c] : "?";
}

static void set(struct kt_roles *r, enum kt_component c, int on,
                const char *fmt, ...)
{
  if (r->on[c] && on)
    return; /* keep the first reason it runs */
  r->on[c] = on;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->why[c], sizeof r->why[c], fmt, ap);
  va_end(ap);
}

static int fail(char *err, size_t len, const char *msg)
{
  snprintf(err, len, "%s", msg);
  return -EINVAL;
}

static int is(const char *v, const char *want)
{
  return v && strcmp(v, want) == 0;
}

/* The flags' own components, and the combinations refused outright. */
static int enabled(const struct kt_roles_flags *f, struct kt_roles *r,
                   char *err, size_t len)
{
  int redis = is(f->mq, "redis");
  if (!redis && !is(f->mq, "local"))
    return fail(err, len, "--mq must be local or redis");
  if (f->webhook && !redis && !f->consumer)
    return fail(err, len, "--audit-webhook-enable with --mq=local needs "
                "--audit-consumer-enable (the queue is in this process; "
                "--mq=redis runs them apart)");
  if (f->webhook && redis && !f->producer)
    return fail(err, len, "--audit-webhook-enable with --mq=redis needs "
                "--audit-producer-enable (it puts the events in the stream)");
  if (f->replay && !f->consumer)
    return fail(err, len, "replay needs --audit-consumer-enable");
  set(r, KT_C_WEBHOOK, f->webhook, "--audit-webhook-enable=%s",
      f->webhook ? "true" : "false");
  if (f->webhook)
    set(r, KT_C_PRODUCER, 1, redis ? "--audit-producer-enable"
                                   : "in process (--mq=local)");
  set(r, KT_C_CONSUMER, f->consumer || f->replay,
      f->replay && !f->webhook ? "replay" : "--audit-consumer-enable=%s",
      f->consumer ? "true" : "false");
  set(r, KT_C_EVENT_INFORMER, f->event_informer, "--event-informer-enable=%s",
      f->event_informer ? "true" : "false");
  set(r, KT_C_DIFF_CONTROLLER, f->diff_controller,
      "--diff-controller-enable=%s", f->diff_controller ? "true" : "false");
  set(r, KT_C_QUERY, f->query, "--jaeger-query-enable=%s",
      f->query ? "true" : "false");
  set(r, KT_C_METRICS, f->metrics, "--metrics-enable=%s",
      f->metrics ? "true" : "false");
  set(r, KT_C_KELEMETRIX, f->kelemetrix && r->on[KT_C_CONSUMER],
      f->kelemetrix ? (r->on[KT_C_CONSUMER] ? "--kelemetrix-enable"
                                            : "needs the audit consumer")
                    : "--kelemetrix-enable=false");
  return 0;
}

/* What the enabled components need, in dependency order. */
static int needed(const struct kt_roles_flags *f, struct kt_roles *r,
                  char *err, size_t len)
{
  if (r->on[KT_C_PRODUCER] || r->on[KT_C_CONSUMER])
    set(r, KT_C_MQ, 1, "needed by %s", r->on[KT_C_PRODUCER]
                                           ? "audit-producer" : "audit-consumer");
  int decorate = r->on[KT_C_CONSUMER] &&
                 (f->diff_decorator || r->on[KT_C_DIFF_CONTROLLER]);
  set(r, KT_C_DIFF_DECORATOR, decorate, decorate
      ? (f->diff_decorator ? "--diff-decorator-enable" : "diff-controller in this process")
      : (r->on[KT_C_CONSUMER] ? "no watch diffs: --diff-decorator-enable=false"
                              : "no audit consumer"));
  if (r->on[KT_C_CONSUMER])
    set(r, KT_C_AGGREGATOR, 1, "needed by audit-consumer");
  if (r->on[KT_C_EVENT_INFORMER])
    set(r, KT_C_AGGREGATOR, 1, "needed by event-informer");
  if (!r->on[KT_C_AGGREGATOR])
    set(r, KT_C_AGGREGATOR, 0, "nothing makes spans here");
  if (r->on[KT_C_AGGREGATOR])
    set(r, KT_C_SPAN_CACHE, 1, "needed by aggregator");
  if (r->on[KT_C_DIFF_CONTROLLER])
    set(r, KT_C_DIFF_CACHE, 1, "needed by diff-controller");
  if (r->on[KT_C_DIFF_DECORATOR])
    set(r, KT_C_DIFF_CACHE, 1, "needed by diff-decorator");
  if (r->on[KT_C_QUERY])
    set(r, KT_C_TRACE_CACHE, 1, "needed by jaeger-query");
  int otlp = f->otlp_endpoint && *f->otlp_endpoint;
  if (r->on[KT_C_AGGREGATOR] && !f->store_spans && !otlp)
    return fail(err, len, "spans are neither stored nor exported: give "
                "--tracer-otel-endpoint or store them");
  if (otlp && r->on[KT_C_AGGREGATOR])
    set(r, KT_C_OTLP, 1, "--tracer-otel-endpoint");
  if (r->on[KT_C_AGGREGATOR] && f->store_spans)
    set(r, KT_C_STORE, 1, "needed by aggregator");
  if (r->on[KT_C_QUERY])
    set(r, KT_C_STORE, 1, "needed by jaeger-query");
  if (r->on[KT_C_WEBHOOK] && is(f->mq, "local"))
    set(r, KT_C_STORE, 1, "needed by audit-webhook (write-ahead inbox)");
  for (int c = 0; c < KT_C_COUNT; c++)
    if (!r->on[c] && !r->why[c][0])
      set(r, c, 0, "not needed");
  return 0;
}

int kt_roles_resolve(const struct kt_roles_flags *f, struct kt_roles *r,
                     char *err, size_t errlen)
{
  memset(r, 0, sizeof *r);
  int rc = enabled(f, r, err, errlen);
  return rc ? rc : needed(f, r, err, errlen);
}

static const char *backend(const struct kt_roles_flags *f, enum kt_component c)
{
  switch (c) {
  case KT_C_MQ: case KT_C_PRODUCER: return f->mq;
  case KT_C_SPAN_CACHE: return f->span_cache;
  case KT_C_DIFF_CACHE: return f->diff_cache;
  case KT_C_TRACE_CACHE: return f->trace_cache;
  case KT_C_STORE: return f->store;
  case KT_C_OTLP: return f->otlp_endpoint;
  default: return "";
  }
}

void kt_roles_print(const struct kt_roles_flags *f, const struct kt_roles *r,
                    FILE *out)
{
  fprintf(out, "%-16s %-4s %-10s %s\n", "COMPONENT", "RUNS", "BACKEND", "WHY");
  for (int c = 0; c < KT_C_COUNT; c++) {
    const char *b = r->on[c] ? backend(f, c) : "";
    fprintf(out, "%-16s %-4s %-10s %s\n", names[c], r->on[c] ? "yes" : "no",
            b && *b ? b : "-", r->why[c]);
  }
}

void kt_roles_export(const struct kt_roles *r)
{
  struct kt_metric *m = kt_metrics_gauge(kt_metrics_default(), "kelemetry_component",
      "1 for each component this process runs, 0 for the others (kelemetry scan)",
      (const char *const[]){"component", NULL});
  for (int c = 0; c < KT_C_COUNT; c++)
    kt_series_set(kt_metric_series(m, (const char *const[]){names[c]}), r->on[c]);
}
