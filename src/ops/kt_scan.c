/* kt_scan: see the header. The HTTP client is a plain GET over a socket:
 * a scrape needs nothing more, and the scan must work where the servers
 * it checks do not. */
#include "ops/kt_scan.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_BODY ((size_t)16 << 20)

static int dial(const char *host, const char *port)
{
  struct addrinfo hints = {0}, *res, *ai;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res))
    return -1;
  int fd = -1;
  for (ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    struct timeval tv = {5, 0};
    if (fd >= 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  return fd;
}

/* GET url; *body malloc'd (caller frees). 0, or -1 with a reason. */
static int http_get(const char *url, char **body, char *err, size_t errlen)
{
  char host[256], port[16] = "80", path[1024] = "/metrics";
  if (strncmp(url, "http://", 7) != 0) {
    snprintf(err, errlen, "only http:// URLs are supported");
    return -1;
  }
  const char *h = url + 7, *slash = strchr(h, '/'), *colon = strchr(h, ':');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (colon && (!slash || colon < slash)) {
    snprintf(port, sizeof port, "%.*s", (int)(hl - (size_t)(colon - h) - 1), colon + 1);
    hl = (size_t)(colon - h);
  }
  snprintf(host, sizeof host, "%.*s", (int)hl, h);
  if (slash)
    snprintf(path, sizeof path, "%s", slash);
  int fd = dial(host, port);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to %.200s:%s", host, port);
    return -1;
  }
  char req[1600];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
  size_t len = 0, cap = 65536;
  char *buf = malloc(cap + 1);
  if (write(fd, req, (size_t)n) != n || !buf) {
    close(fd);
    free(buf);
    snprintf(err, errlen, "cannot send the request");
    return -1;
  }
  ssize_t r;
  while ((r = read(fd, buf + len, cap - len)) > 0) {
    len += (size_t)r;
    if (len == cap && cap < MAX_BODY) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb)
        break;
      buf = nb;
      cap *= 2;
    }
  }
  close(fd);
  buf[len] = 0;
  char *hdr_end = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.", 7) != 0 || atoi(buf + 9) != 200 || !hdr_end) {
    snprintf(err, errlen, "unexpected answer: %.40s", buf);
    free(buf);
    return -1;
  }
  memmove(buf, hdr_end + 4, len - (size_t)(hdr_end + 4 - buf) + 1);
  *body = buf;
  return 0;
}

double kt_scan_sum(const char *text, const char *name, const char *match)
{
  double sum = 0;
  size_t n = strlen(name);
  for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
    if (strncmp(l, name, n) != 0 || (l[n] != '{' && l[n] != ' '))
      continue;
    const char *end = strchr(l, '\n');
    const char *sp = l[n] == '{' ? strchr(l, '}') : l + n;
    if (!sp || (end && sp > end))
      continue;
    if (match) {
      const char *m = strstr(l, match);
      if (!m || m > sp)
        continue;
    }
    sum += strtod(sp + 1, NULL);
  }
  return sum;
}

struct report {
  FILE *out;
  int attention;
};

static void advise(struct report *r, const char *fmt, const char *detail)
{
  fprintf(r->out, "  [!] ");
  fprintf(r->out, fmt, detail);
  fputc('\n', r->out);
  r->attention = 1;
}

/* Whether the process registered metric `name` (a family without samples
 * still has its # TYPE line). */
static int has_metric(const char *text, const char *name)
{
  char t[160];
  snprintf(t, sizeof t, "# TYPE %s ", name);
  return strstr(text, t) != NULL;
}

/* Whether component c runs there, from kelemetry_component (kt_roles);
 * without that family (an older process) every component is assumed, as
 * an all-in-one runs them all. */
static int runs(const char *text, const char *c)
{
  char m[96];
  if (!has_metric(text, "kelemetry_component"))
    return 1;
  snprintf(m, sizeof m, "component=\"%s\"", c);
  return kt_scan_sum(text, "kelemetry_component", m) > 0;
}

/* " a=1 b=2" for the label values of `label` in metric `name` that count. */
static double list_values(const char *text, const char *name, const char *label,
                          const char *const *values, FILE *out)
{
  char m[96];
  double total = 0;
  for (size_t i = 0; values[i]; i++) {
    snprintf(m, sizeof m, "%s=\"%s\"", label, values[i]);
    double v = kt_scan_sum(text, name, m);
    if (v > 0)
      fprintf(out, " %s=%.0f", values[i], v);
    total += v;
  }
  return total;
}

static double by(const char *text, const char *name, const char *label, const char *value)
{
  char m[96];
  snprintf(m, sizeof m, "%s=\"%s\"", label, value);
  return kt_scan_sum(text, name, m);
}

static void print_roles(const char *text, FILE *o)
{
  static const char *const names[] = {
      "audit-webhook", "audit-consumer", "event-informer", "diff-controller",
      "diff-decorator", "span-store", "otlp-exporter", "jaeger-query", NULL};
  if (!has_metric(text, "kelemetry_component"))
    return;
  fprintf(o, "  Runs:");
  int any = 0;
  for (size_t i = 0; names[i]; i++)
    if (runs(text, names[i])) {
      fprintf(o, "%s %s", any ? "," : "", names[i]);
      any = 1;
    }
  fprintf(o, "%s\n", any ? "" : " no tracing component (metrics only)");
}

static void scan_ingest(const char *text, struct report *r)
{
  static const char *const reasons[] = {"bad_json", "not_event", "missing_field",
      "bad_timestamp", "clock_skew", "bad_cluster", "queue_full", "store_error",
      "internal_error", NULL};
  FILE *o = r->out;
  double req = kt_scan_sum(text, "http_requests_total", "server=\"webhook\"");
  double rejected = kt_scan_sum(text, "audit_rejected_total", NULL);
  double full = by(text, "audit_rejected_total", "reason", "queue_full");
  double depth = kt_scan_sum(text, "audit_queue_depth", NULL);
  double limit = kt_scan_sum(text, "audit_queue_limit", NULL);
  double denied = kt_scan_sum(text, "http_denied_total", "server=\"webhook\"");
  fprintf(o, "  Received %.0f webhook requests\n", req);
  if (req == 0)
    advise(r, "%s", "the audit webhook has received nothing: start the kube-apiserver "
           "with --audit-webhook-config-file (a kubeconfig whose server is "
           "http://<kelemetry>:8080/audit/<cluster>) and --audit-policy-file "
           "(level RequestResponse)");
  if (rejected > 0) {
    fprintf(o, "  Refused %.0f events:", rejected);
    list_values(text, "audit_rejected_total", "reason", reasons, o);
    fputc('\n', o);
  }
  if (full > 0 || (limit > 0 && depth >= limit * 0.9))
    advise(r, "%s", "the ingest queue fills up: the consumers do not keep up; raise "
           "--audit-consumer-workers, give the store a faster disk, or split the "
           "load over more instances");
  if (rejected > full)
    advise(r, "%s", "some senders post invalid audit events: see the reasons above "
           "and the webhook's 400 answers");
  if (denied > 0)
    advise(r, "%s", "requests were refused for credentials or client certificates: "
           "check the apiserver's webhook kubeconfig");
}

/* The webhook's side of --mq=redis. */
static void scan_mq_producer(const char *text, struct report *r)
{
  static const char *const reasons[] = {"queue_full", "unavailable", "redis_error", NULL};
  FILE *o = r->out;
  if (!has_metric(text, "audit_mq_refused_total"))
    return;
  fprintf(o, "  Queued %.0f audit events in Redis\n",
          kt_scan_sum(text, "audit_mq_produced_total", NULL));
  if (kt_scan_sum(text, "audit_mq_refused_total", NULL) <= 0)
    return;
  fprintf(o, "  Redis queue refused requests:");
  list_values(text, "audit_mq_refused_total", "reason", reasons, o);
  fputc('\n', o);
  if (by(text, "audit_mq_refused_total", "reason", "queue_full") > 0)
    advise(r, "%s", "the Redis streams are full (a partition reached --mq-redis-max-len, "
           "the webhook answers 503): the consumers do not keep up or none runs; add "
           "consumers (up to --mq-redis-partitions) or raise --mq-redis-max-len");
  if (by(text, "audit_mq_refused_total", "reason", "unavailable") > 0)
    advise(r, "%s", "Redis is unreachable from the webhook (--mq-redis-address): check "
           "that Redis runs and that this pod may reach it (NetworkPolicy); meanwhile "
           "the webhook answers 503 and the apiservers retry");
  if (by(text, "audit_mq_refused_total", "reason", "redis_error") > 0)
    advise(r, "%s", "Redis answered errors to the webhook (OOM under maxmemory "
           "noeviction? a read-only replica?): see the webhook's log (mq: XADD refused)");
}

/* The consumer's side of --mq=redis. lag_grew: the lag rose between two
 * scrapes (-1: not measured). */
static void scan_mq_consumer(const char *text, int lag_grew, struct report *r)
{
  FILE *o = r->out;
  if (!has_metric(text, "audit_mq_partitions_owned"))
    return;
  double owned = kt_scan_sum(text, "audit_mq_partitions_owned", NULL);
  double lag = kt_scan_sum(text, "audit_mq_lag", NULL);
  double dead = kt_scan_sum(text, "audit_mq_dead_letter_total", NULL);
  double errs = kt_scan_sum(text, "audit_mq_redis_errors_total", NULL);
  fprintf(o, "  Reads %.0f Redis partitions, %.0f entries waiting%s\n", owned, lag,
          lag_grew > 0 ? " (growing)" : "");
  if (owned == 0)
    advise(r, "%s", "this consumer reads no partition: more consumers than "
           "--mq-redis-partitions (it stands by), or its partition leases fail "
           "(audit_mq_redis_errors_total{op=\"lease\"}: is Redis reachable?)");
  if (lag_grew > 0)
    advise(r, "%s", "the Redis queue grows: the consumers do not keep up; add consumers "
           "(up to --mq-redis-partitions), raise --audit-consumer-workers, or check the "
           "store (below)");
  if (dead > 0) {
    fprintf(o, "  Dead-lettered %.0f entries\n", dead);
    advise(r, "%s", "entries crashed or stalled every consumer that took them and were "
           "moved to <prefix>:dead (--mq-redis-stream-prefix, kelemetry:audit:dead): "
           "look at them with redis-cli XRANGE kelemetry:audit:dead - + COUNT 10 and the "
           "consumers' logs");
  }
  if (errs > 0) {
    static const char *const ops[] = {"read", "ack", "lease", NULL};
    fprintf(o, "  Redis errors of the consumer:");
    list_values(text, "audit_mq_redis_errors_total", "op", ops, o);
    fputc('\n', o);
    advise(r, "%s", "the consumer lost Redis (--mq-redis-address): processing waits "
           "until it is back; check Redis and the NetworkPolicy");
  }
}

static void scan_store(const char *text, struct report *r)
{
  static const char *const ops[] = {"connect", "write", "read", "retain", NULL};
  FILE *o = r->out;
  fprintf(o, "  Stored %.0f spans\n", kt_scan_sum(text, "store_spans_written_total", NULL));
  if (kt_scan_sum(text, "store_writes_lost_total", NULL) > 0)
    advise(r, "%s", "the store gave up writes: is the disk full or read-only? "
           "(store_writes_lost_total)");
  if (kt_scan_sum(text, "store_errors_total", "backend=\"postgres\"") > 0) {
    fprintf(o, "  PostgreSQL errors:");
    list_values(text, "store_errors_total", "op", ops, o);
    fputc('\n', o);
    advise(r, "%s", "PostgreSQL failed or was unreachable (--storage-postgres-dsn): "
           "span writes stall and are retried (the queue backs up) and searches answer "
           "503 until it is back; check the server, the DSN's credentials and the "
           "NetworkPolicy");
  }
}

static void scan_kv(const char *text, struct report *r)
{
  static const char *const backends[] = {"redis", "etcd", NULL};
  FILE *o = r->out;
  double outages = kt_scan_sum(text, "kv_outages_total", NULL);
  double errs = kt_scan_sum(text, "kv_errors_total", NULL);
  if (outages <= 0 && errs <= 0)
    return;
  fprintf(o, "  Shared cache outages:");
  list_values(text, "kv_outages_total", "backend", backends, o);
  fprintf(o, ", failed calls:");
  list_values(text, "kv_errors_total", "backend", backends, o);
  fputc('\n', o);
  advise(r, "%s", "a shared cache engine (span, diff or trace cache on Redis or etcd) "
         "was unreachable: processing waits for it and retries, so spans and diffs "
         "stall meanwhile; check the engine at --*-cache-redis-address / "
         "--*-cache-etcd-endpoints (etcd: /health on its client port)");
}

static void scan_otlp(const char *text, struct report *r)
{
  static const char *const reasons[] = {"buffer_full", "rejected", "partial_success",
      "retries_exhausted", "shutdown", "encode", NULL};
  FILE *o = r->out;
  if (!has_metric(text, "otlp_export_dropped_total"))
    return;
  fprintf(o, "  Exported %.0f spans over OTLP\n",
          kt_scan_sum(text, "otlp_export_spans_total", NULL));
  double fails = kt_scan_sum(text, "otlp_export_failures_total", NULL);
  double conn = kt_scan_sum(text, "otlp_export_failures_total", "reason=\"connection\"") +
                kt_scan_sum(text, "otlp_export_failures_total", "reason=\"timeout\"");
  if (kt_scan_sum(text, "otlp_export_dropped_total", NULL) <= 0 && fails <= 0)
    return;
  fprintf(o, "  OTLP dropped spans:");
  list_values(text, "otlp_export_dropped_total", "reason", reasons, o);
  fprintf(o, " (failed requests: %.0f, %.0f connection or timeout)\n", fails, conn);
  if (conn > 0 || by(text, "otlp_export_dropped_total", "reason", "retries_exhausted") > 0)
    advise(r, "%s", "the OTLP collector is down or unreachable (--tracer-otel-endpoint): "
           "spans wait in the buffer, then are dropped; check the collector and the URL "
           "(http://host:4318/v1/traces)");
  if (by(text, "otlp_export_dropped_total", "reason", "buffer_full") > 0)
    advise(r, "%s", "the OTLP buffer overflowed: the collector is slower than kelemetry "
           "or was away too long; raise --tracer-otel-buffer-spans / "
           "--tracer-otel-buffer-bytes or scale the collector");
  if (by(text, "otlp_export_dropped_total", "reason", "rejected") > 0 ||
      by(text, "otlp_export_dropped_total", "reason", "partial_success") > 0)
    advise(r, "%s", "the OTLP collector rejected spans (a 4xx answer or a partial "
           "success): see otlp_export_failures_total{reason=\"http_<status>\"}, the "
           "collector's log, --tracer-otel-headers (credentials) and "
           "--tracer-otel-encoding");
}

/* lag_grew: see scan_mq_consumer. */
static void scan_one(const char *text, int lag_grew, struct report *r)
{
  FILE *o = r->out;
  print_roles(text, o);
  if (runs(text, "audit-webhook")) {
    scan_ingest(text, r);
    scan_mq_producer(text, r);
  }
  if (runs(text, "audit-consumer")) {
    double traced = kt_scan_sum(text, "audit_consumer_event_total", "outcome=\"traced\"");
    double consumed = kt_scan_sum(text, "audit_consumer_event_total", NULL);
    fprintf(o, "  Consumed %.0f audit events, %.0f with an audit span\n", consumed, traced);
    scan_mq_consumer(text, lag_grew, r);
  }
  if (runs(text, "span-store"))
    scan_store(text, r);
  scan_kv(text, r);
  scan_otlp(text, r);
  double miss = by(text, "diff_decorator_total", "outcome", "miss");
  double hits = by(text, "diff_decorator_total", "outcome", "hit");
  if (runs(text, "diff-decorator") && miss > 0 && miss > hits)
    advise(r, "%s", "most updates have no diff: objects are first seen mid-life "
           "(normal right after start) or the audit policy is not at RequestResponse level");
}

static int lag_wait_ms = 2000;

void kt_scan_set_lag_wait(int ms)
{
  lag_wait_ms = ms;
}

int kt_scan(const char *const *urls, int n, FILE *out)
{
  struct report r = {out, 0};
  int unreachable = 0;
  for (int i = 0; i < n; i++) {
    char *text = NULL, err[256];
    fprintf(out, "%s:\n", urls[i]);
    if (http_get(urls[i], &text, err, sizeof err)) {
      fprintf(out, "  [!] %s\n", err);
      unreachable = 1;
      continue;
    }
    /* lag is a level: whether it grows needs a second look */
    int grew = -1;
    double lag = kt_scan_sum(text, "audit_mq_lag", NULL);
    if (lag > 0 && lag_wait_ms > 0) {
      char *again = NULL;
      usleep((useconds_t)lag_wait_ms * 1000);
      if (!http_get(urls[i], &again, err, sizeof err)) {
        grew = kt_scan_sum(again, "audit_mq_lag", NULL) > lag;
        free(text);
        text = again;
      }
    }
    scan_one(text, grew, &r);
    free(text);
  }
  return unreachable ? 2 : r.attention;
}
