/* kt_scan: `kelemetry scan` — reads the metrics of running kelemetry
 * instances and says what looks wrong and what to do (behaviour spec §4,
 * with advice). Exit status 1 when something needs attention. */
#ifndef KT_SCAN_H
#define KT_SCAN_H
#include <stdio.h>

/* urls: metrics endpoints (http://host:port/metrics). Prints the report
 * to out; returns 0 (healthy), 1 (attention needed) or 2 (unreachable). */
int kt_scan(const char *const *urls, int n, FILE *out);

/* Sum of every sample of metric `name` whose labels contain all of
 * `match` (e.g. `server="webhook"`; NULL = any), from exposition text. */
double kt_scan_sum(const char *text, const char *name, const char *match);

#endif
