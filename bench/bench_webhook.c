/* bench_webhook: drives a running kelemetry's audit webhook with the
 * bodies of a file (one EventList per line, from bench/gen_load.py) over
 * keep-alive loopback connections, and measures
 *   - acknowledged events/s and per-request latency (p50/p99/max),
 *   - end to end: the time until the consumer has turned every event into
 *     spans (audit_consumer_event_total on the metrics port) and the store
 *     has committed them (store_pending_writes back to 0).
 * With --rate, requests are paced to that many events/s (open loop).
 * A 503 is retried after 10 ms, as the apiserver retries with backoff.
 *
 *   bench_webhook FILE PORT METRICS_PORT [--conns N] [--rate EV/S]
 *                 [--repeat K] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct body {
  char *data;
  size_t len;
  int events;
};

static struct body *bodies;
static size_t nbodies, repeat = 1;
static int port, mport, conns = 8;
static double rate;
static atomic_size_t next_req;
static atomic_long retries, events_acked;
static double *lat;
static int64_t t0;

static int64_t now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dial(int p)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
    perror("connect");
    exit(1);
  }
  return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      perror("write");
      exit(1);
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Reads one HTTP response; returns its status, body into buf if given. */
static int read_resp(int fd, char *buf, size_t cap, size_t *blen)
{
  static __thread char hdr[65536];
  size_t n = 0;
  char *end = NULL;
  while (!end) {
    ssize_t r = read(fd, hdr + n, sizeof hdr - 1 - n);
    if (r <= 0) {
      fprintf(stderr, "connection closed\n");
      exit(1);
    }
    n += (size_t)r;
    hdr[n] = 0;
    end = strstr(hdr, "\r\n\r\n");
  }
  int status = atoi(hdr + 9);
  char *cl = strcasestr(hdr, "content-length:");
  size_t clen = cl ? strtoul(cl + 15, NULL, 10) : 0;
  size_t have = n - (size_t)(end + 4 - hdr);
  size_t keep = have < cap ? have : cap;
  if (buf)
    memcpy(buf, end + 4, keep);
  while (have < clen) {
    char tmp[65536];
    ssize_t r = read(fd, tmp, sizeof tmp);
    if (r <= 0)
      exit(1);
    if (buf && have + (size_t)r <= cap)
      memcpy(buf + have, tmp, (size_t)r);
    have += (size_t)r;
  }
  if (blen)
    *blen = have < cap ? have : cap;
  return status;
}

static void *client(void *arg)
{
  int fd = dial(port);
  char head[256];
  size_t total = nbodies * repeat;
  for (;;) {
    size_t i = atomic_fetch_add(&next_req, 1);
    if (i >= total)
      break;
    struct body *b = &bodies[i % nbodies];
    if (rate > 0) { /* open loop: request i is due at its slot */
      int64_t due = t0 + (int64_t)((double)i * b->events / rate * 1e6);
      int64_t wait = due - now_us();
      if (wait > 0)
        usleep((useconds_t)wait);
    }
    int64_t start = now_us();
    int status;
    do {
      int hn = snprintf(head, sizeof head,
                        "POST /audit/bench HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n", b->len);
      write_all(fd, head, (size_t)hn);
      write_all(fd, b->data, b->len);
      status = read_resp(fd, NULL, 0, NULL);
      if (status == 503) {
        atomic_fetch_add(&retries, 1);
        usleep(10000);
      } else if (status != 200) {
        fprintf(stderr, "status %d\n", status);
        exit(1);
      }
    } while (status == 503);
    lat[i] = (double)(now_us() - start) / 1000.0;
    atomic_fetch_add(&events_acked, b->events);
  }
  close(fd);
  return NULL;
}

/* The events consumed so far; *pending: the store's uncommitted writes. */
static double consumed(double *pending)
{
  static char buf[1 << 20];
  int fd = dial(mport);
  const char *req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  write_all(fd, req, strlen(req));
  size_t n = 0;
  read_resp(fd, buf, sizeof buf - 1, &n);
  close(fd);
  buf[n] = 0;
  double sum = 0;
  for (char *l = strstr(buf, "\naudit_consumer_event_total{"); l;
       l = strstr(l + 1, "\naudit_consumer_event_total{")) {
    char *sp = strchr(l, '}');
    if (sp && strstr(l, "cluster=\"bench\"") && strstr(l, "cluster=\"bench\"") < sp)
      sum += strtod(sp + 1, NULL);
  }
  char *p = strstr(buf, "\nstore_pending_writes ");
  *pending = p ? strtod(p + 22, NULL) : 0;
  return sum;
}

static void load(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(1);
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    bodies = realloc(bodies, (nbodies + 1) * sizeof *bodies);
    struct body *b = &bodies[nbodies++];
    b->data = malloc((size_t)n);
    memcpy(b->data, line, (size_t)n);
    b->len = (size_t)n;
    b->events = 0;
    for (char *p = line; (p = strstr(p, "\"auditID\"")); p++)
      b->events++;
  }
  free(line);
  fclose(f);
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  if (argc < 4) {
    fprintf(stderr, "usage: %s FILE PORT METRICS_PORT [--conns N] [--rate EV/S] [--repeat K]\n", argv[0]);
    return 2;
  }
  port = atoi(argv[2]);
  mport = atoi(argv[3]);
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--conns"))
      conns = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rate"))
      rate = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--repeat"))
      repeat = strtoul(argv[i + 1], NULL, 10);
  }
  load(argv[1]);
  size_t total = nbodies * repeat;
  long events = 0;
  for (size_t i = 0; i < total; i++)
    events += bodies[i % nbodies].events;
  lat = calloc(total, sizeof *lat);
  /* METRICS_PORT 0: the events are consumed elsewhere (Redis Streams);
   * the caller measures end to end itself. */
  double pending, before = mport ? consumed(&pending) : 0;
  pthread_t th[256];
  t0 = now_us();
  for (int i = 0; i < conns; i++)
    pthread_create(&th[i], NULL, client, NULL);
  for (int i = 0; i < conns; i++)
    pthread_join(th[i], NULL);
  int64_t acked = now_us();
  /* Done when every event was consumed and its spans are committed. */
  while (mport && (consumed(&pending) - before < (double)events || pending > 0))
    usleep(20000);
  int64_t done = now_us();
  qsort(lat, total, sizeof *lat, cmp);
  printf("events %ld in %zu requests of ~%d, %d connections%s\n", events, total,
         bodies[0].events, conns, rate > 0 ? " (paced)" : "");
  printf("acknowledged: %.0f events/s (%.2fs), 503 retries %ld\n",
         (double)events / ((double)(acked - t0) / 1e6), (double)(acked - t0) / 1e6,
         (long)retries);
  if (mport)
    printf("end to end (all events turned into spans): %.0f events/s (%.2fs)\n",
           (double)events / ((double)(done - t0) / 1e6), (double)(done - t0) / 1e6);
  printf("request latency ms: p50 %.2f p99 %.2f max %.2f\n", lat[total / 2],
         lat[(size_t)((double)total * 0.99)], lat[total - 1]);
  return 0;
}
