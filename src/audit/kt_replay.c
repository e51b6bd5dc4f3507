/* kt_replay: see the header. zlib's gz* functions read plain files too,
 * so compressed and plain input share one path. */
#include "audit/kt_replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "core/kt_log.h"
#include "core/kt_time.h"

#define MAX_LINE ((size_t)256 << 20) /* one document; larger is refused */

struct reader {
  gzFile gz;
  char *buf;
  size_t cap;
  off_t total; /* compressed size, 0 if unknown (stdin) */
};

/* Reads one line of any length (up to MAX_LINE). Returns its length, 0 at
 * end of file, -1 on error or an over-long line. */
static ssize_t read_line(struct reader *r)
{
  size_t len = 0;
  for (;;) {
    if (r->cap - len < 2) {
      size_t cap = r->cap ? r->cap * 2 : 65536;
      if (cap > MAX_LINE + 2)
        return -1;
      char *b = realloc(r->buf, cap);
      if (!b)
        return -1;
      r->buf = b;
      r->cap = cap;
    }
    if (!gzgets(r->gz, r->buf + len, (int)(r->cap - len))) {
      r->buf[len] = 0;
      return (ssize_t)len;
    }
    len += strlen(r->buf + len);
    if (len && r->buf[len - 1] == '\n')
      return (ssize_t)len;
  }
}

static void progress(FILE *out, const struct reader *r,
                     const struct kt_replay_stats *st, int64_t t0)
{
  double secs = (double)(kt_mono_us() - t0) / 1e6;
  double rate = secs > 0 ? (double)st->events / secs : 0;
  if (r->total > 0) {
    double frac = (double)gzoffset(r->gz) / (double)r->total;
    if (frac > 1)
      frac = 1;
    int w = (int)(frac * 30);
    double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
    fprintf(out, "\r[%.*s%*s] %3.0f%% %llu events %.0f ev/s ETA %.0fs ",
            w, "==============================", 30 - w, "", frac * 100,
            (unsigned long long)st->events, rate, eta);
  } else {
    fprintf(out, "\r%llu events %.0f ev/s ", (unsigned long long)st->events,
            rate);
  }
  fflush(out);
}

static void count_reject(struct kt_replay_stats *st, enum kt_audit_err e,
                         const char *path, const char *msg)
{
  st->rejected++;
  st->by_reason[e]++;
  if (!st->example_line[e]) {
    st->example_line[e] = st->lines;
    snprintf(st->example_file[e], sizeof st->example_file[e], "%s", path);
  }
  kt_debug("%s:%llu: %s", path, (unsigned long long)st->lines, msg);
}

static void submit_doc(struct kt_consumer *c, const char *cluster,
                       const char *path, char *line, size_t len,
                       struct kt_replay_stats *st)
{
  cJSON *root, *items;
  int single;
  char err[256];
  enum kt_audit_err e =
      kt_audit_parse_doc(line, len, &root, &items, &single, err, sizeof err);
  if (e != KT_AUDIT_OK) {
    count_reject(st, e, path, err);
    return;
  }
  struct kt_submit_result r;
  int n = single ? 1 : cJSON_GetArraySize(items);
  int rc = kt_consumer_submit(c, cluster, "replay", items, single, 1, &r);
  kt_audit_doc_free(root, !single || rc);
  st->events += (uint64_t)n;
  st->accepted += r.accepted;
  if (r.rejected) {
    for (size_t i = 0; i < r.rejected; i++)
      count_reject(st, KT_AUDIT_MISSING_FIELD, path, r.first_err);
  }
}

static int is_blank(const char *s)
{
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
      return 0;
  return 1;
}

/* A pretty-printed document spans lines: gather the rest of the file. */
static int slurp_rest(struct reader *r, size_t have, size_t *len)
{
  *len = have;
  for (;;) {
    if (r->cap - *len < 65536) {
      size_t cap = r->cap * 2;
      char *b = cap <= MAX_LINE ? realloc(r->buf, cap) : NULL;
      if (!b)
        return -EFBIG;
      r->buf = b;
      r->cap = cap;
    }
    int n = gzread(r->gz, r->buf + *len, (unsigned)(r->cap - *len - 1));
    if (n < 0)
      return -EIO;
    if (n == 0)
      break;
    *len += (size_t)n;
  }
  r->buf[*len] = 0;
  return 0;
}

int kt_replay_file(struct kt_consumer *c, const char *path,
                   const char *cluster, FILE *prog,
                   struct kt_replay_stats *st)
{
  struct reader r = {0};
  struct stat sb;
  int stdin_ = strcmp(path, "-") == 0;
  r.gz = stdin_ ? gzdopen(dup(0), "rb") : gzopen(path, "rb");
  if (!r.gz) {
    int e = errno ? errno : EIO;
    kt_error("replay: cannot open %s: %s", path, strerror(e));
    return -e;
  }
  if (!stdin_ && stat(path, &sb) == 0)
    r.total = sb.st_size;
  gzbuffer(r.gz, 1 << 17);
  int64_t t0 = kt_mono_us(), last = 0;
  ssize_t n;
  int rc = 0;
  while ((n = read_line(&r)) > 0) {
    st->lines++;
    if (is_blank(r.buf))
      continue;
    size_t len = (size_t)n;
    /* One document over many lines (first line just "{" or "[" ...). */
    if (st->lines == 1 && r.buf[0] == '{' && !strchr(r.buf, '}') &&
        slurp_rest(&r, len, &len)) {
      rc = -EFBIG;
      break;
    }
    submit_doc(c, cluster, path, r.buf, len, st);
    if (prog && kt_mono_us() - last > 200000) {
      progress(prog, &r, st, t0);
      last = kt_mono_us();
    }
  }
  if (n < 0) {
    kt_error("replay: %s: line %llu unreadable or over %zu MiB", path,
             (unsigned long long)st->lines + 1, MAX_LINE >> 20);
    rc = -EIO;
  }
  if (prog) {
    progress(prog, &r, st, t0);
    fputc('\n', prog);
  }
  gzclose(r.gz);
  free(r.buf);
  return rc;
}

void kt_replay_summary(FILE *out, const struct kt_replay_stats *st,
                       const struct kt_consumer_stats *cs)
{
  fprintf(out, "read %llu lines, %llu events: %llu accepted (%llu traced, "
          "%llu filtered, %llu failed, %llu already stored), %llu rejected\n",
          (unsigned long long)st->lines, (unsigned long long)st->events,
          (unsigned long long)st->accepted, (unsigned long long)cs->traced,
          (unsigned long long)cs->filtered, (unsigned long long)cs->failed,
          (unsigned long long)cs->duplicate, (unsigned long long)st->rejected);
  for (int e = 1; e < 5; e++)
    if (st->by_reason[e])
      fprintf(out, "  rejected %s: %llu (first at %s:%llu)\n",
              kt_audit_err_name((enum kt_audit_err)e),
              (unsigned long long)st->by_reason[e], st->example_file[e],
              (unsigned long long)st->example_line[e]);
}
