/* kt_time: see kt_time.h. Hand-written parsers: audit timestamps are parsed
 * twice per event, so strptime/mktime (locale and TZ aware) are avoided. */
#include "core/kt_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int digits(const char *s, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int kt_time_parse(const char *s, int64_t *us)
{
  int y, mo, d, h, mi, se;
  if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' ||
      digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
      s[16] != ':' || digits(s + 17, 2, &se))
    return -EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    return -EINVAL;
  const char *p = s + 19;
  int64_t frac = 0, scale = 1000000;
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9')
      return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (scale > 1) {
        scale /= 10;
        frac += (*p - '0') * scale;
      }
    }
  }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
      return -EINVAL;
    off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
    p += 6;
  } else {
    return -EINVAL;
  }
  if (*p)
    return -EINVAL;
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  *us = (secs - off) * 1000000 + frac;
  return 0;
}

void kt_time_format(int64_t us, char *buf, size_t len)
{
  time_t secs = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  int64_t frac = us - (int64_t)secs * 1000000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
           tm.tm_min, tm.tm_sec, (long long)frac);
}

int kt_duration_parse(const char *s, int64_t *us)
{
  static const struct { const char *u; double f; } units[] = {
      {"ns", 0.001}, {"us", 1}, {"µs", 1}, {"ms", 1e3},
      {"s", 1e6},    {"m", 6e7}, {"h", 3.6e9}};
  if (!s || !*s)
    return -EINVAL;
  double total = 0;
  const char *p = s;
  if (strcmp(s, "0") == 0) {
    *us = 0;
    return 0;
  }
  while (*p) {
    char *end;
    double v = strtod(p, &end);
    if (end == p || !(v >= 0 && v < 1e300)) /* also NaN, inf */
      return -EINVAL;
    p = end;
    size_t best = 0;
    double f = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
      size_t n = strlen(units[i].u);
      if (strncmp(p, units[i].u, n) == 0 && n > best) {
        best = n;
        f = units[i].f;
      }
    }
    if (!best)
      return -EINVAL;
    total += v * f;
    p += best;
  }
  if (!(total < 9.2e18)) /* would not fit: converting is undefined */
    return -EINVAL;
  *us = (int64_t)total;
  return 0;
}

int64_t kt_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kt_mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
