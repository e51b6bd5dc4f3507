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

static void list_reasons(const char *text, FILE *out)
{
  static const char *reasons[] = {"bad_json", "not_event", "missing_field",
                                  "bad_timestamp", "bad_cluster", "queue_full"};
  char m[64];
  for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
    snprintf(m, sizeof m, "reason=\"%s\"", reasons[i]);
    double v = kt_scan_sum(text, "audit_rejected_total", m);
    if (v > 0)
      fprintf(out, " %s=%.0f", reasons[i], v);
  }
}

static void scan_one(const char *text, struct report *r)
{
  FILE *o = r->out;
  double req = kt_scan_sum(text, "http_requests_total", "server=\"webhook\"");
  double traced = kt_scan_sum(text, "audit_consumer_event_total", "outcome=\"traced\"");
  double consumed = kt_scan_sum(text, "audit_consumer_event_total", NULL);
  double rejected = kt_scan_sum(text, "audit_rejected_total", NULL);
  double full = kt_scan_sum(text, "audit_rejected_total", "reason=\"queue_full\"");
  double spans = kt_scan_sum(text, "store_spans_written_total", NULL);
  double lost = kt_scan_sum(text, "store_writes_lost_total", NULL);
  double depth = kt_scan_sum(text, "audit_queue_depth", NULL);
  double limit = kt_scan_sum(text, "audit_queue_limit", NULL);
  double miss = kt_scan_sum(text, "diff_decorator_total", "outcome=\"miss\"");
  double hits = kt_scan_sum(text, "diff_decorator_total", "outcome=\"hit\"");
  double denied = kt_scan_sum(text, "http_denied_total", "server=\"webhook\"");
  fprintf(o, "  Received %.0f webhook requests\n", req);
  if (req == 0)
    advise(r, "%s", "the audit webhook has received nothing: start the kube-apiserver "
           "with --audit-webhook-config-file (a kubeconfig whose server is "
           "http://<kelemetry>:8080/audit/<cluster>) and --audit-policy-file "
           "(level RequestResponse)");
  fprintf(o, "  Consumed %.0f audit events, %.0f with an audit span\n", consumed, traced);
  fprintf(o, "  Stored %.0f spans\n", spans);
  if (rejected > 0) {
    fprintf(o, "  Refused %.0f events:", rejected);
    list_reasons(text, o);
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
  if (lost > 0)
    advise(r, "%s", "the store gave up writes: is the disk full or read-only? "
           "(store_writes_lost_total)");
  if (miss > 0 && miss > hits)
    advise(r, "%s", "most updates have no diff: objects are first seen mid-life "
           "(normal right after start) or the audit policy is not at RequestResponse level");
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
    scan_one(text, &r);
    free(text);
  }
  return unreachable ? 2 : r.attention;
}
