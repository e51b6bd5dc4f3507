/* kt_scan: `kelemetry scan` — reads the metrics of running kelemetry
 * instances and says what looks wrong and what to do (behaviour spec §4,
 * with advice). Exit status 1 when something needs attention. Role-aware:
 * the components an instance runs come from its kelemetry_component
 * gauge (kt_roles), so an informer is not told its webhook receives
 * nothing; the distributed engines (Redis queue, PostgreSQL, shared
 * caches, OTLP export) are judged from their metrics where they exist. */
#ifndef KT_SCAN_H
#define KT_SCAN_H
#include <stdio.h>

/* urls: metrics endpoints (http://host:port/metrics). Prints the report
 * to out; returns 0 (healthy), 1 (attention needed) or 2 (unreachable). */
int kt_scan(const char *const *urls, int n, FILE *out);

/* When a consumer reports queued Redis entries, it is scraped again after
 * ms to tell a growing queue from a busy one (0: once; default 2000). */
void kt_scan_set_lag_wait(int ms);

/* Sum of every sample of metric `name` whose labels contain all of
 * `match` (e.g. `server="webhook"`; NULL = any), from exposition text. */
double kt_scan_sum(const char *text, const char *name, const char *match);

#endif
