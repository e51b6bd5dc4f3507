/* kt_time: RFC 3339 timestamps and durations, in microseconds since the
 * Unix epoch (the unit of spans and of the Jaeger API). */
#ifndef KT_TIME_H
#define KT_TIME_H
#include <stddef.h>
#include <stdint.h>

/* Parses "2021-09-27T08:36:44.014671Z" (any fraction length, Z or
 * +hh:mm offset). Returns 0 and *us, or -EINVAL. */
int kt_time_parse(const char *s, int64_t *us);
/* Writes RFC 3339 UTC with 6 fractional digits; buf needs 28 bytes. */
void kt_time_format(int64_t us, char *buf, size_t len);
/* Parses Go-style durations "30m", "1h30m", "1.5s", "500ms", "10us".
 * Returns 0 and *us, or -EINVAL. */
int kt_duration_parse(const char *s, int64_t *us);
int64_t kt_now_us(void);
int64_t kt_mono_us(void);

#endif
