/* kt_log: see kt_log.h. The level check is a plain read so disabled debug
 * logging costs one comparison on the hot path. */
#include "core/kt_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kt_log_level min_level = KT_LOG_INFO;
static int json_format;
static FILE *out;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *names[] = {"debug", "info", "warn", "error"};

int kt_log_configure(const char *level, const char *format, const char *file)
{
  int lvl = -1;
  for (int i = 0; i < 4; i++)
    if (level && strcmp(level, names[i]) == 0)
      lvl = i;
  if (level && strcmp(level, "warning") == 0)
    lvl = KT_LOG_WARN;
  if (lvl < 0)
    return -EINVAL;
  if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
    return -EINVAL;
  min_level = (enum kt_log_level)lvl;
  json_format = format && strcmp(format, "json") == 0;
  if (file && *file) {
    FILE *f = fopen(file, "a");
    if (!f)
      return -errno;
    out = f;
  }
  return 0;
}

static void json_escape(FILE *f, const char *s)
{
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
}

void kt_log(enum kt_log_level lvl, const char *fmt, ...)
{
  if (lvl < min_level)
    return;
  char msg[2048], ts[40];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
  FILE *f = out ? out : stderr;
  pthread_mutex_lock(&lock);
  if (json_format) {
    fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, names[lvl]);
    json_escape(f, msg);
    fputs("\"}\n", f);
  } else {
    fprintf(f, "%s %-5s %s\n", ts, names[lvl], msg);
  }
  fflush(f);
  pthread_mutex_unlock(&lock);
}
