/* kt_pipeline: see the header. */
#include "audit/kt_pipeline.h"

#include <string.h>

#include "aggregator/kt_spancache.h"
#include "diff/kt_decorator.h"
#include "diff/kt_diffcache.h"

int kt_pipeline_open(const struct kt_pipeline_opts *o, struct kt_pipeline *p)
{
  memset(p, 0, sizeof *p);
  int rc = o->pg_dsn ? kt_store_open_postgres(o->pg_dsn, &o->store, &p->store)
                     : kt_store_open_sqlite(o->db_path, &o->store, &p->store);
  rc = rc ? rc : kt_spancache_open(&o->span_cache, p->store,
                                   o->span_cache_entries, &p->sc);
  p->diff_cache = o->diff_cache;
  rc = rc ? rc : kt_diffcache_new(p->store, o->diff_cache_bytes, &p->dc);
  rc = rc ? rc : kt_aggregator_new(&o->agg, p->store, p->sc, p->dc, &p->agg);
  if (!rc && o->otlp.endpoint && *o->otlp.endpoint) {
    rc = kt_otlp_new(&o->otlp, &p->otlp);
    if (!rc)
      kt_aggregator_set_exporter(p->agg, p->otlp, !o->otlp_only);
  }
  rc = rc ? rc : kt_filter_new(&o->filter, &p->filter);
  rc = rc ? rc : kt_decorator_new(o->redact_pattern, p->dc, &p->dec);
  rc = rc ? rc : kt_consumer_new(&o->consumer, p->filter, p->dec, p->agg,
                                 &p->consumer);
  if (rc)
    kt_pipeline_close(p);
  return rc;
}

void kt_pipeline_close(struct kt_pipeline *p)
{
  kt_consumer_free(p->consumer); /* drains the queue first */
  kt_decorator_free(p->dec);
  kt_filter_free(p->filter);
  kt_aggregator_free(p->agg);
  kt_otlp_free(p->otlp); /* flushes what the aggregator handed over */
  kt_diffcache_free(p->dc); /* persists the bodies */
  kt_spancache_free(p->sc);
  kt_store_close(p->store); /* flushes */
  memset(p, 0, sizeof *p);
}
