/* bench_store: spans/s through the store API alone (no HTTP, no JSON):
 * N spans like the aggregator's (audit spans with a ~2 KB diff log, one
 * object span per 10), put from 2 threads, until flush returns.
 *
 *   bench_store sqlite PATH [N]
 *   bench_store postgres CONNINFO [N]  */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_time.h"
#include "store/kt_store.h"

static struct kt_store *st;
static int total;

static struct kt_span *span(int i)
{
  int obj = i / 10;
  struct kt_span *s = kt_span_new(i % 10 ? "audit" : "object", "update");
  memset(s->trace_id, 0, 16);
  memcpy(s->trace_id, &obj, sizeof obj);
  s->span_id = (uint64_t)i + 1;
  s->parent_id = i % 10 ? (uint64_t)obj * 10 + 1 : 0;
  s->start_us = 1767225600000000LL + (int64_t)i * 1000;
  s->end_us = s->start_us + 5000;
  char name[32], msg[2200];
  snprintf(name, sizeof name, "pod-%d", obj);
  kt_span_add_tag(s, "cluster", "bench");
  kt_span_add_tag(s, "resource", "pods");
  kt_span_add_tag(s, "namespace", "default");
  kt_span_add_tag(s, "name", name);
  kt_span_add_tag(s, "auditId", "2b6c1f0e-8d0e-4a57-9f1e-3c1b7b0f6a11");
  for (size_t k = 0; k < sizeof msg - 1; k++)
    msg[k] = (char)('a' + (k * 7 + (size_t)i) % 26);
  msg[sizeof msg - 1] = 0;
  kt_span_add_log(s, s->start_us, "audit/objectDiff", msg);
  return s;
}

static void *putter(void *arg)
{
  for (int i = (int)(intptr_t)arg; i < total; i += 2)
    kt_store_put(st, span(i));
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: bench_store sqlite|postgres PATH|CONNINFO [N]\n");
    return 2;
  }
  total = argc > 3 ? atoi(argv[3]) : 100000;
  struct kt_store_opts o = {0};
  int rc = !strcmp(argv[1], "postgres") ? kt_store_open_postgres(argv[2], &o, &st)
                                        : kt_store_open_sqlite(argv[2], &o, &st);
  if (rc)
    return 1;
  int64_t t0 = kt_mono_us();
  pthread_t th[2];
  for (intptr_t i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, putter, (void *)i);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  kt_store_flush(st);
  double secs = (double)(kt_mono_us() - t0) / 1e6;
  printf("%s: %d spans in %.2f s = %.0f spans/s\n", argv[1], total, secs,
         total / secs);
  kt_store_close(st);
  return 0;
}
