/* kt_roles: which components a set of flags runs (behaviour spec §0.1,
 * §0.3). A component with an enable flag runs when the flag says so; the
 * others (aggregator, caches, store, exporter) run when an enabled
 * component needs them. A combination where an enabled component lacks
 * what it needs is refused with a one-line reason, before anything
 * starts. `kelemetry --print-components` prints the resolution.
 *
 * The three roles of the production topology (§5.1) are flag sets:
 *   informers: --audit-webhook-enable=false --audit-consumer-enable=false
 *              --jaeger-query-enable=false --event-informer-enable
 *              --diff-controller-enable
 *   consumers: --jaeger-query-enable=false --mq=redis (webhook, producer,
 *              consumer, diff decorator)
 *   frontend:  --audit-webhook-enable=false --audit-consumer-enable=false
 *   everything: no flag (all-in-one). */
#ifndef KT_ROLES_H
#define KT_ROLES_H
#include <stddef.h>
#include <stdio.h>

struct kt_roles_flags {
  int webhook, producer, consumer, replay;
  int event_informer, diff_controller, diff_decorator;
  int query, metrics, kelemetrix;
  int store_spans;          /* spans go to the store (not export-only) */
  const char *mq;           /* "local" or "redis" */
  const char *span_cache, *diff_cache, *trace_cache; /* local|redis|etcd */
  const char *store;        /* "sqlite" or "postgres" */
  const char *otlp_endpoint; /* "" = no export */
};

enum kt_component {
  KT_C_WEBHOOK, KT_C_PRODUCER, KT_C_MQ, KT_C_CONSUMER, KT_C_EVENT_INFORMER,
  KT_C_DIFF_CONTROLLER, KT_C_DIFF_DECORATOR, KT_C_AGGREGATOR, KT_C_SPAN_CACHE,
  KT_C_DIFF_CACHE, KT_C_STORE, KT_C_OTLP, KT_C_QUERY, KT_C_TRACE_CACHE,
  KT_C_METRICS, KT_C_KELEMETRIX, KT_C_COUNT
};

struct kt_roles {
  int on[KT_C_COUNT];
  char why[KT_C_COUNT][96]; /* "--flag", "needed by x", or why it is off */
};

/* Resolves f into r. 0, or -EINVAL with the reason in err. */
int kt_roles_resolve(const struct kt_roles_flags *f, struct kt_roles *r,
                     char *err, size_t errlen);
const char *kt_component_name(enum kt_component c);
/* One line per component: name, on/off, backend, why. */
void kt_roles_print(const struct kt_roles_flags *f, const struct kt_roles *r,
                    FILE *out);
/* Sets the gauge kelemetry_component{component} (1 runs, 0 not) in the
 * default registry: `kelemetry scan` judges a process by what it runs. */
void kt_roles_export(const struct kt_roles *r);

#endif
