/* kt_webhook: see the header. */
#include "audit/kt_webhook.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "audit/kt_inbox.h"
#include "audit/kt_mq_producer.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

static int valid_cluster(const char *c)
{
  size_t n = strlen(c);
  if (!n || n > 63)
    return 0;
  for (; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || strchr("-_.", *c)))
      return 0;
  return 1;
}

static struct kt_metric *rejected_metric(void)
{
  return kt_metrics_counter(kt_metrics_default(), "audit_rejected_total",
      "Audit events refused at ingest, by reason",
      (const char *const[]){"reason", NULL});
}

static void reject(struct kt_http_resp *resp, int status, const char *reason,
                   const char *msg)
{
  kt_metric_inc(rejected_metric(), (const char *const[]){reason});
  kt_http_error(resp, status, msg);
}

static void ok_body(struct kt_http_resp *resp, const struct kt_submit_result *r)
{
  char *b = malloc(640);
  if (!b) {
    resp->status = 200;
    return;
  }
  int n;
  if (r->rejected) {
    cJSON *s = cJSON_CreateString(r->first_err);
    char *msg = cJSON_PrintUnformatted(s);
    n = snprintf(b, 640, "{\"accepted\":%zu,\"rejected\":%zu,\"errors\":"
                 "[{\"index\":%d,\"reason\":\"%s\",\"message\":%s}]}",
                 r->accepted, r->rejected, r->first_bad, r->first_reason,
                 msg ? msg : "\"\"");
    free(msg);
    cJSON_Delete(s);
  } else {
    n = snprintf(b, 640, "{\"accepted\":%zu,\"rejected\":0}", r->accepted);
  }
  kt_http_set_body(resp, 200, "application/json", b,
                   (size_t)(n > 639 ? 639 : n));
}

static int handle(struct kt_webhook *w, const char *cluster,
                  const struct kt_http_req *req, struct kt_http_resp *resp);

/* The answer once the events are queued: 400 if every item was bad. */
static int answer(struct kt_webhook *w, const char *cluster,
                  const struct kt_submit_result *r, struct kt_http_resp *resp)
{
  if (r->accepted == 0 && r->rejected > 0) {
    kt_http_error(resp, 400, r->first_err);
    return 0;
  }
  if (w->on_cluster && r->accepted)
    w->on_cluster(cluster, w->on_cluster_ud);
  ok_body(resp, r);
  return 0;
}

/* --mq=redis: the 200 waits until Redis has every event of the batch. */
static int produce(struct kt_webhook *w, const char *cluster,
                   const struct kt_http_req *req, struct kt_http_resp *resp,
                   cJSON *root, cJSON *items, int single)
{
  struct kt_submit_result r;
  int rc = kt_mq_produce(w->mq, cluster, req->client_ip, items, single, &r);
  /* a single Event was consumed by the producer */
  kt_audit_doc_free(root, !single);
  if (rc == -EAGAIN) {
    reject(resp, 503, "queue_full", "audit queue full, retry later");
    resp->retry_after = 1;
    return 0;
  }
  if (rc) {
    reject(resp, 503, "mq_unavailable",
           "the audit queue (Redis) is unavailable; retry later");
    resp->retry_after = 1;
    return 0;
  }
  return answer(w, cluster, &r, resp);
}

static struct kt_defer m_request; /* audit_webhook_request (§3.2) */
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
  kt_defer_register(&m_request, "audit_webhook_request",
                    "Audit webhook requests, by cluster (any answer)",
                    (const char *const[]){"cluster", NULL});
}

int kt_webhook_handle(void *ud, const struct kt_http_req *req,
                      struct kt_http_resp *resp)
{
  int64_t t0 = kt_mono_us();
  pthread_once(&m_once, register_metrics);
  struct kt_webhook *w = ud;
  const char *cluster = w->default_cluster;
  if (strncmp(req->path, "/audit/", 7) == 0 && req->path[7])
    cluster = req->path + 7;
  int rc = handle(w, cluster, req, resp);
  kt_defer_done(&m_request, (const char *const[]){valid_cluster(cluster) ? cluster : ""}, t0);
  return rc;
}

static int handle(struct kt_webhook *w, const char *cluster,
                  const struct kt_http_req *req, struct kt_http_resp *resp)
{
  if (!valid_cluster(cluster)) {
    reject(resp, 400, "bad_cluster", "invalid cluster name in path");
    return 0;
  }
  /* Full already: refuse before spending a parse on a batch that cannot
   * be queued (the apiserver will resend it). */
  if (!w->mq && kt_consumer_depth(w->consumer) >= kt_consumer_limit(w->consumer)) {
    kt_metric_inc(rejected_metric(), (const char *const[]){"queue_full"});
    kt_http_error(resp, 503, "ingest queue full, retry later");
    resp->retry_after = 1;
    return 0;
  }
  cJSON *root, *items;
  int single;
  char err[256];
  enum kt_audit_err e = kt_audit_parse_doc(req->body, req->len, &root, &items,
                                           &single, err, sizeof err);
  if (e != KT_AUDIT_OK) {
    reject(resp, 400, kt_audit_err_name(e), err);
    return 0;
  }
  if (w->mq)
    return produce(w, cluster, req, resp, root, items, single);
  struct kt_submit_result r;
  int rc = w->inbox ? kt_inbox_accept(w->inbox, cluster, req->client_ip,
                                      req->body, req->len, items, single, &r)
                    : kt_consumer_submit(w->consumer, cluster, req->client_ip,
                                         items, single, 0, &r);
  /* A single Event is owned by the queue once in. */
  kt_audit_doc_free(root, !single || rc);
  if (rc == -EIO) {
    reject(resp, 503, "store_error", "the store cannot write (disk full or "
           "read-only?); retry later");
    resp->retry_after = 5;
    return 0;
  }
  if (rc == -EBUSY) {
    reject(resp, 503, "store_unavailable", "the store (PostgreSQL) is "
           "unreachable; retry later");
    resp->retry_after = 2;
    return 0;
  }
  if (rc && rc != -EAGAIN && rc != -ESHUTDOWN) {
    reject(resp, 503, "internal_error", "cannot accept now; retry later");
    resp->retry_after = 1;
    return 0;
  }
  if (rc == -EAGAIN || rc == -ESHUTDOWN) {
    kt_http_error(resp, 503, "ingest queue full, retry later");
    resp->retry_after = 1;
    return 0;
  }
  return answer(w, cluster, &r, resp);
}
