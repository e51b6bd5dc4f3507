/* kt_aggregator: object events to spans (behaviour spec §1.8-§1.10).
 *
 * Every object gets one trace per time window, rooted at an `object`
 * pseudo span created exactly once through the span cache. Events (audit
 * requests, Kubernetes Events) become child spans of it. When an object
 * span is created, the linkers run: controller ownerReferences and the
 * parent-link annotation produce `link` pseudo spans in both traces, and
 * the linked object's span is ensured in turn, so linking is transitive.
 * Links run synchronously in the caller's thread (no link queue to lose
 * jobs from, unlike the original's). */
#ifndef KT_AGGREGATOR_H
#define KT_AGGREGATOR_H
#include <stdint.h>

#include <cjson/cJSON.h>

#include "store/kt_span.h"

struct kt_store;
struct kt_spancache;
struct kt_diffcache;
struct kt_aggregator;
struct kt_otlp;

struct kt_agg_opts {
  int64_t span_ttl_us;       /* window length, default 30m */
  int64_t span_extra_ttl_us; /* extra span-cache lifetime, default 0 */
  int64_t reserve_ttl_us;    /* default 10s */
  const char *pseudo_global_tags; /* "k=v,k2=v2" */
  const char *event_global_tags;
  const char *resource_tag_mapping; /* default "pods#nodes:spec.nodeName" */
  int resource_object_tag, resource_event_tag;
  const char *resource_event_tag_verbs; /* default "create" */
  int owner_linker, annotation_linker;
};

/* An object as events refer to it. body (borrowed, may be NULL) is its
 * latest full JSON when the event carried it. */
struct kt_object {
  const char *cluster, *group, *version, *resource, *namespace, *name, *uid;
  const cJSON *body;
  /* The event is redelivered after a crash: a pseudo span the span cache
   * knows may have died in the crashed process's writer queue, so it is
   * checked in the store and written again (same ids) when missing. */
  int recovered;
};

/* Borrowed pointers must outlive the aggregator. */
int kt_aggregator_new(const struct kt_agg_opts *o, struct kt_store *store,
                      struct kt_spancache *sc, struct kt_diffcache *dc,
                      struct kt_aggregator **out);
void kt_aggregator_free(struct kt_aggregator *a);

/* Sends an event span for obj. ev's service is its trace source (`audit`
 * or `event`), its operation the title, its times, tags and logs set by
 * the caller, and its span_id when it must be stable (0 = random); the aggregator adds the object tags, parents it under the
 * object span and stores it. Takes ownership of ev in all cases.
 * 0 or a negative code (the event is then dropped and counted). */
int kt_aggregator_send(struct kt_aggregator *a, const struct kt_object *obj,
                       struct kt_span *ev);

void kt_object_key(const struct kt_object *o, char *buf, size_t len);

/* Where linkers and taggers get a body when the event has none and none is
 * known (the object cache). fetch returns a tree the aggregator deletes,
 * or NULL; it may block (an apiserver GET). Set before sending. */
void kt_aggregator_set_fetch(struct kt_aggregator *a,
                             cJSON *(*fetch)(void *ud, const struct kt_object *o),
                             void *ud);

/* Every span is also handed to exp (borrowed, may be NULL; set before
 * sending) and, unless store_spans is 0, stored (the default). Without
 * stored spans kt_aggregator_has_event() is always 0. */
void kt_aggregator_set_exporter(struct kt_aggregator *a, struct kt_otlp *exp,
                                int store_spans);

/* Whether the event span span_id of obj at time t_us is already stored
 * (object spans have ids derived from (object, window), so this is one
 * indexed read). Used to skip events replayed after a crash. */
int kt_aggregator_has_event(struct kt_aggregator *a,
                            const struct kt_object *obj, int64_t t_us,
                            uint64_t span_id);

#endif
