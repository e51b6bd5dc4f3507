/* bench_parse: the baseline of the ingest benchmark — the parse-only rate
 * of the same bodies bench_webhook sends: each EventList is parsed and
 * every item validated (kt_audit_parse_doc + kt_audit_event_init), as the
 * webhook does before queueing, and nothing else. Run on the same cores
 * with the same threads as the end-to-end run. Measured with cJSON's own
 * parser and with the webhook's (kt_jparse into kt_jmem arenas).
 *
 *   bench_parse FILE [THREADS] [REPEAT] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json/kt_jmem.h"
#include "parse_body.h"

struct body {
  char *data;
  size_t len;
};

static struct body *bodies;
static size_t nbodies, total;
static atomic_size_t next;
static atomic_long events;
static int stock; /* cJSON's own parser instead of the webhook's */

static void *worker(void *arg)
{
  for (;;) {
    size_t i = atomic_fetch_add(&next, 1);
    if (i >= total)
      break;
    const struct body *b = &bodies[i % nbodies];
    long n = parse_body(b->data, b->len, stock);
    if (n < 0)
      abort();
    atomic_fetch_add(&events, n);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [THREADS] [REPEAT]\n", argv[0]);
    return 2;
  }
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  size_t repeat = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  char *line = NULL;
  size_t cap = 0, bytes = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    bodies = realloc(bodies, (nbodies + 1) * sizeof *bodies);
    bodies[nbodies].data = malloc((size_t)n);
    memcpy(bodies[nbodies].data, line, (size_t)n);
    bodies[nbodies++].len = (size_t)n;
    bytes += (size_t)n;
  }
  free(line);
  fclose(f);
  total = nbodies * repeat;
  /* Twice: cJSON's parser on the heap (the stock way), then ours into
   * arenas as the webhook parses (kt_jparse, kt_jmem). */
  for (int arena = 0; arena < 2; arena++) {
    stock = !arena;
    if (arena && kt_jmem_install())
      return 1;
    atomic_store(&next, 0);
    atomic_store(&events, 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pthread_t th[64];
    for (int i = 0; i < threads; i++)
      pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
      pthread_join(th[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("parse-only (%s): %ld events in %.2fs on %d threads: %.0f events/s, %.0f MB/s\n",
           arena ? "kt_jparse, arena" : "cJSON", (long)events, secs, threads,
           (double)events / secs, (double)bytes * (double)repeat / secs / 1e6);
  }
  return 0;
}
