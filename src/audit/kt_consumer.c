/* kt_consumer: see the header. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "audit/kt_consumer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/kt_aggregator.h"
#include "aggregator/kt_kinds.h"
#include "audit/kt_audit.h"
#include "audit/kt_filter.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_str.h"
#include "core/kt_metrics.h"
#include "core/kt_queue.h"
#include "core/kt_time.h"
#include "diff/kt_decorator.h"
#include "kelemetrix/kt_kelemetrix.h"
#include "store/kt_span.h"

struct item {
  struct kt_queue_item q;
  struct kt_audit_event ev;
  char source[64];
  struct kt_ticket *ticket; /* the request it came in, or NULL */
  int recovered;            /* replayed: may already be stored */
  size_t tree_bytes;        /* arena bytes the event's tree spans */
  int keyed; /* its object key was built ahead, in its worker's buffer */
};

#define KEY_MAX 1024 /* an object key: cluster/group/resource/ns/name */

/* An event's tree as kt_jparse laid it out: from its node to the next
 * event's, when both sit in one arena chunk; else a Pod's worth. */
#define TREE_GUESS 20480
#define TREE_MAX 65536

static size_t tree_bytes(const cJSON *item)
{
  uintptr_t a = (uintptr_t)item, b = (uintptr_t)item->next;
  return b > a && b - a <= TREE_MAX ? (size_t)(b - a) : TREE_GUESS;
}

/* By the time a worker reaches an event, its tree has waited behind
 * thousands of others and left the caches, and so has the previous
 * version of its object; walking them (the diff) then stalls on one miss
 * after another. So a worker processes its queue as a pipeline: the
 * memory of the event two ahead is asked for, then (arrived meanwhile)
 * the next event's object key is built and the previous version of that
 * object asked for, then the current event is processed: 20-25 % less
 * CPU per event under a full queue. */
static void prefetch_item(const struct item *it)
{
  const char *t = (const char *)it->ev.json;
  __builtin_prefetch(it);
  __builtin_prefetch((const char *)it + 64);
  for (size_t off = 0; t && off < it->tree_bytes; off += 64)
    __builtin_prefetch(t + off);
}

struct kt_consumer {
  struct kt_consumer_opts o;
  struct kt_filter *filter;
  struct kt_decorator *dec;
  struct kt_aggregator *agg;
  struct kt_queue *queue;
  pthread_t *threads;
  unsigned nthreads;
  struct kt_metric *m_events, *m_rejected;
  struct kt_metric *m_e2e; /* audit_consumer_e2e_latency (§3.2), ns */
  _Atomic uint64_t traced, filtered, failed, duplicate;
};

void kt_ticket_release(struct kt_ticket *t)
{
  if (t && atomic_fetch_sub(&t->pending, 1) == 1)
    t->done(t);
}

/* Stable across a replay: the same event becomes the same span. */
static uint64_t audit_span_id(const struct kt_audit_event *ev)
{
  char buf[256];
  struct kt_str s;
  kt_str_init(&s, buf, sizeof buf);
  kt_str_add(&s, "audit:");
  kt_str_add(&s, ev->cluster);
  kt_str_addc(&s, '/');
  kt_str_add(&s, ev->audit_id);
  uint64_t h = kt_hash(buf, s.len < sizeof buf ? s.len : strlen(buf));
  return h ? h : 1;
}

struct worker_arg {
  struct kt_consumer *c;
  size_t part;
};

static const char *status_text(int code)
{
  switch (code) {
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  default: return code >= 300 && code < 400 ? "Redirect" : "Error";
  }
}

static void add_source_ips(struct kt_span *s, const cJSON *ips)
{
  char proxy[1024] = "[";
  size_t n = 1;
  int i = 0;
  const cJSON *ip;
  cJSON_ArrayForEach(ip, ips) {
    if (!cJSON_IsString(ip))
      continue;
    if (i++ == 0) {
      kt_span_add_tag(s, "sourceIP", ip->valuestring);
      continue;
    }
    n += (size_t)snprintf(proxy + n, n < sizeof proxy ? sizeof proxy - n : 0,
                          "%s%s", i > 2 ? " " : "", ip->valuestring);
  }
  if (i > 1 && n + 2 < sizeof proxy) {
    strcat(proxy, "]");
    kt_span_add_tag(s, "proxy", proxy);
  }
}

/* The audit span of §1.4: title, timing and tags. */
static struct kt_span *audit_span(struct kt_consumer *c, struct item *it)
{
  const struct kt_audit_event *ev = &it->ev;
  const char *user = ev->impersonated && !c->o.ignore_impersonate
                         ? ev->impersonated : ev->username;
  char title[512], code[16];
  struct kt_str t;
  kt_str_init(&t, title, sizeof title);
  kt_str_add(&t, user);
  kt_str_addc(&t, ' ');
  kt_str_add(&t, ev->verb);
  if (ev->subresource && *ev->subresource) {
    kt_str_addc(&t, ' ');
    kt_str_add(&t, ev->subresource);
  }
  if (ev->code >= 300) {
    kt_str_add(&t, " (");
    kt_str_add(&t, status_text(ev->code));
    kt_str_addc(&t, ')');
  }
  kt_str_init(&t, code, sizeof code);
  kt_str_int(&t, ev->code);
  struct kt_span *s = kt_span_new("audit", title);
  if (!s)
    return NULL;
  s->start_us = ev->received_us;
  s->end_us = ev->stage_us;
  kt_span_add_tag(s, "auditId", ev->audit_id);
  kt_span_add_tag(s, "username", user);
  kt_span_add_tag(s, "userAgent", ev->user_agent ? ev->user_agent : "");
  kt_span_add_tag(s, "responseCode", code);
  kt_span_add_tag(s, "resourceVersion", ev->rv ? ev->rv : "");
  kt_span_add_tag(s, "apiserver", it->source);
  kt_span_add_tag(s, "tag", ev->verb);
  add_source_ips(s, cJSON_GetObjectItemCaseSensitive(ev->json, "sourceIPs"));
  return s;
}

static void learn_kind(const struct kt_audit_event *ev)
{
  const char *kind = kt_json_str(ev->response_object, "kind");
  if (kind && (!ev->subresource || !*ev->subresource) &&
      kt_decorator_body(ev))
    kt_kinds_learn(ev->api_group ? ev->api_group : "", kind, ev->resource);
}

/* key: the event's object key if already built, else NULL. */
static void process(struct kt_consumer *c, struct item *it, const char *key)
{
  struct kt_audit_event *ev = &it->ev;
  if (c->o.kelemetrix) /* every event, before the filter (§3.3) */
    kt_kelemetrix_observe(c->o.kelemetrix, ev, it->source);
  const char *why = kt_filter_check(c->filter, ev);
  if (why) {
    kt_metric_inc(c->m_events, (const char *const[]){ev->cluster, why});
    c->filtered++;
    return;
  }
  learn_kind(ev);
  char kbuf[KEY_MAX];
  if (!key) {
    kt_audit_object_key(ev, kbuf, sizeof kbuf);
    key = kbuf;
  }
  struct kt_object obj = {ev->cluster, ev->api_group ? ev->api_group : "",
                          ev->api_version, ev->resource,
                          kt_audit_namespace(ev), kt_audit_name(ev), ev->uid,
                          kt_decorator_body(ev), it->recovered};
  uint64_t span_id = audit_span_id(ev);
  if ((it->recovered || c->o.skip_existing) &&
      kt_aggregator_has_event(c->agg, &obj, ev->received_us, span_id)) {
    kt_metric_inc(c->m_events, (const char *const[]){ev->cluster, "duplicate"});
    c->duplicate++;
    return;
  }
  struct kt_span *s = audit_span(c, it);
  if (!s) {
    c->failed++;
    return;
  }
  s->span_id = span_id;
  int remember;
  kt_decorator_apply(c->dec, ev, key, s, &remember);
  int rc = kt_aggregator_send(c->agg, &obj, s);
  if (remember)
    kt_decorator_remember(c->dec, ev, key);
  if (rc)
    c->failed++;
  else
    c->traced++;
  kt_metric_inc(c->m_events, (const char *const[]){
                                 ev->cluster, rc ? "aggregator_error" : "traced"});
  kt_series_observe(kt_metric_series(c->m_e2e, (const char *const[]){
                        ev->cluster, obj.group, ev->resource}),
                    (double)(kt_now_us() - ev->stage_us) * 1000.0);
}

static void *worker(void *p)
{
  struct worker_arg *wa = p;
  struct kt_consumer *c = wa->c;
  struct kt_queue_item *qi;
  pthread_setname_np(pthread_self(), "kt-consumer");
  char key[2][KEY_MAX]; /* key[k]: the item just popped, if it->keyed */
  int k = 0;
  while ((qi = kt_queue_pop(c->queue, wa->part))) {
    struct item *it = (struct item *)qi;
    struct kt_queue_item *ahead[2];
    size_t n = kt_queue_peek(c->queue, wa->part, ahead, 2);
    const char *cur_key = it->keyed ? key[k] : NULL;
    if (n == 2)
      prefetch_item((struct item *)ahead[1]);
    if (n >= 1) {
      struct item *next = (struct item *)ahead[0];
      k ^= 1;
      kt_audit_object_key(&next->ev, key[k], sizeof key[k]);
      kt_decorator_prefetch(c->dec, &next->ev, key[k]);
      next->keyed = 1;
    }
    process(c, it, cur_key);
    kt_ticket_release(it->ticket);
    kt_audit_event_free(&it->ev);
    free(it);
    kt_queue_done(c->queue, 1);
  }
  free(wa);
  return NULL;
}

int kt_consumer_new(const struct kt_consumer_opts *o, struct kt_filter *f,
                    struct kt_decorator *d, struct kt_aggregator *a,
                    struct kt_consumer **out)
{
  struct kt_consumer *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  c->o = *o;
  if (!c->o.workers)
    c->o.workers = 2;
  if (!c->o.queue_limit)
    c->o.queue_limit = 8000;
  c->filter = f;
  c->dec = d;
  c->agg = a;
  struct kt_metrics *r = kt_metrics_default();
  c->m_e2e = kt_metrics_summary(r, "audit_consumer_e2e_latency_summary",
      "Nanoseconds from an audit event's stageTimestamp to its span being sent",
      (const char *const[]){"cluster", "apiGroup", "resource", NULL});
  c->m_events = kt_metrics_counter(r, "audit_consumer_event_total",
      "Audit events consumed, by outcome (traced or the filter's reason)",
      (const char *const[]){"cluster", "outcome", NULL});
  c->m_rejected = kt_metrics_counter(r, "audit_rejected_total",
      "Audit events refused at ingest, by reason",
      (const char *const[]){"reason", NULL});
  int rc = kt_queue_new(c->o.workers, c->o.queue_limit, &c->queue);
  c->threads = calloc(c->o.workers, sizeof *c->threads);
  if (rc || !c->threads) {
    kt_queue_free(c->queue);
    free(c->threads);
    free(c);
    return rc ? rc : -ENOMEM;
  }
  for (unsigned i = 0; i < c->o.workers; i++) {
    struct worker_arg *wa = malloc(sizeof *wa);
    wa->c = c;
    wa->part = i;
    pthread_create(&c->threads[i], NULL, worker, wa);
    c->nthreads++;
  }
  *out = c;
  return 0;
}

void kt_consumer_free(struct kt_consumer *c)
{
  if (!c)
    return;
  kt_queue_wait_idle(c->queue);
  kt_queue_close(c->queue);
  for (unsigned i = 0; i < c->nthreads; i++)
    pthread_join(c->threads[i], NULL);
  kt_queue_free(c->queue);
  free(c->threads);
  free(c);
}

static size_t partition_of(const struct kt_audit_event *ev, size_t n)
{
  char key[1024];
  kt_audit_object_key(ev, key, sizeof key);
  return (size_t)(kt_hash(key, strlen(key)) % n);
}

static void reject(struct kt_consumer *c, struct kt_submit_result *res,
                   int index, enum kt_audit_err e, const char *err)
{
  res->rejected++;
  kt_metric_inc(c->m_rejected, (const char *const[]){kt_audit_err_name(e)});
  if (res->first_bad < 0) {
    res->first_bad = index;
    res->first_reason = kt_audit_err_name(e);
    snprintf(res->first_err, sizeof res->first_err, "%s", err);
  }
}

int kt_consumer_submit(struct kt_consumer *c, const char *cluster,
                       const char *source_addr, cJSON *items, int single,
                       int wait, struct kt_submit_result *res)
{
  return kt_consumer_submit_ticket(c, cluster, source_addr, items, single,
                                   wait, NULL, 0, res);
}

int kt_consumer_submit_ticket(struct kt_consumer *c, const char *cluster,
                              const char *source_addr, cJSON *items,
                              int single, int wait, struct kt_ticket *ticket,
                              int recovered, struct kt_submit_result *res)
{
  size_t n = single ? 1 : (size_t)cJSON_GetArraySize(items);
  memset(res, 0, sizeof *res);
  res->first_bad = -1;
  if (n == 0)
    return 0;
  int rc = wait ? kt_queue_reserve_wait(c->queue, n)
                : kt_queue_reserve(c->queue, n);
  if (rc) {
    kt_metric_inc(c->m_rejected, (const char *const[]){"queue_full"});
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    size_t bytes = single ? TREE_GUESS : tree_bytes(items->child);
    cJSON *item = single ? items : cJSON_DetachItemFromArray(items, 0);
    char err[256];
    struct item *it = calloc(1, sizeof *it);
    if (!it) {
      cJSON_Delete(item);
      reject(c, res, (int)i, KT_AUDIT_MISSING_FIELD, "out of memory");
      continue;
    }
    enum kt_audit_err e = kt_audit_event_init(&it->ev, item, cluster, err,
                                              sizeof err);
    if (e != KT_AUDIT_OK) {
      free(it);
      reject(c, res, (int)i, e, err);
      continue;
    }
    snprintf(it->source, sizeof it->source, "%s", source_addr ? source_addr : "");
    it->recovered = recovered;
    it->tree_bytes = bytes;
    if (ticket) {
      atomic_fetch_add(&ticket->pending, 1);
      it->ticket = ticket;
    }
    kt_queue_push(c->queue, partition_of(&it->ev, c->o.workers), &it->q);
    res->accepted++;
  }
  if (res->rejected)
    kt_queue_unreserve(c->queue, res->rejected);
  return 0;
}

void kt_consumer_stats(struct kt_consumer *c, struct kt_consumer_stats *out)
{
  out->traced = c->traced;
  out->filtered = c->filtered;
  out->failed = c->failed;
  out->duplicate = c->duplicate;
}

void kt_consumer_wait_idle(struct kt_consumer *c)
{
  kt_queue_wait_idle(c->queue);
}

size_t kt_consumer_depth(struct kt_consumer *c)
{
  return kt_queue_depth(c->queue);
}

size_t kt_consumer_limit(struct kt_consumer *c)
{
  return kt_queue_limit(c->queue);
}
