/* kt_frontend: the Jaeger query HTTP API (what the unmodified Jaeger UI
 * and our own UI call) with Kelemetry's semantics (behaviour spec §2):
 * service = display mode, operation = cluster, tags = object selectors.
 * Also GET /redirect (§2.10). Errors: status >= 400 with the Jaeger
 * envelope {"data":null,"errors":[{"code":..,"msg":..}]}. */
#ifndef KT_FRONTEND_H
#define KT_FRONTEND_H
#include <stddef.h>
#include <stdint.h>

#include "http/kt_http.h"

struct kt_store;
struct kt_kv_choice;
struct kt_frontend;

struct kt_frontend_opts {
  const char *clusters;       /* "a,b"; empty = every cluster seen */
  int64_t trace_cache_ttl_us; /* default 24h */
  int follow_link_limit;      /* default 10 */
  int64_t span_ttl_us;        /* the aggregator's window, default 30m */
  const struct kt_kv_choice *trace_cache; /* NULL = embedded */
};

int kt_frontend_new(const struct kt_frontend_opts *o, struct kt_store *store,
                    struct kt_frontend **out);
void kt_frontend_free(struct kt_frontend *f);
/* Adds a cluster to the operations list (ingest calls it). */
void kt_frontend_note_cluster(struct kt_frontend *f, const char *cluster);
/* The routes to register on the query server (before the UI's). */
const struct kt_http_route *kt_frontend_routes(struct kt_frontend *f,
                                               size_t *n);

#endif
