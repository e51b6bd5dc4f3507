/* kt_pipeline: the embedded ingest pipeline assembled in one place — the
 * store, the span and diff caches, the aggregator, the filter, the diff
 * decorator and the consumer — opened in dependency order and closed in
 * reverse (the queue drains, caches persist, the store flushes). Used by
 * main and by the tests, so both run exactly the same wiring. */
#ifndef KT_PIPELINE_H
#define KT_PIPELINE_H
#include <stddef.h>

#include "aggregator/kt_aggregator.h"
#include "audit/kt_consumer.h"
#include "audit/kt_filter.h"
#include "store/kt_otlp.h"
#include "kv/kt_kv.h"
#include "store/kt_store.h"

struct kt_pipeline_opts {
  const char *db_path;
  const char *pg_dsn; /* non-NULL: the store is PostgreSQL, not db_path */
  struct kt_store_opts store;
  size_t span_cache_entries; /* 0 = default */
  size_t diff_cache_bytes;   /* 0 = default */
  struct kt_agg_opts agg;
  struct kt_filter_opts filter;
  const char *redact_pattern;
  struct kt_consumer_opts consumer;
  /* OTLP export when otlp.endpoint is set; otlp_only: spans are exported
   * and not stored (the store keeps the caches and the inbox). */
  struct kt_otlp_opts otlp;
  int otlp_only;
  /* --span-cache / --diff-cache: local (embedded) or a shared engine */
  struct kt_kv_choice span_cache, diff_cache;
};

struct kt_pipeline {
  struct kt_store *store;
  struct kt_spancache *sc;
  struct kt_diffcache *dc;
  struct kt_aggregator *agg;
  struct kt_filter *filter;
  struct kt_decorator *dec;
  struct kt_consumer *consumer;
  struct kt_otlp *otlp; /* NULL without export */
  struct kt_kv_choice diff_cache; /* for whoever makes the patch cache */
};

/* 0, or a negative code with the reason logged; on failure everything
 * opened so far is closed again. */
int kt_pipeline_open(const struct kt_pipeline_opts *o, struct kt_pipeline *p);
/* Drains and closes; safe on a zeroed or half-opened pipeline. */
void kt_pipeline_close(struct kt_pipeline *p);

#endif
