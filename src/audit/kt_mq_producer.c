/* kt_mq_producer: see the header. */
#include "audit/kt_mq_producer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_decorator.h"

#define POOL_MAX 8
/* After a failed connect, requests are refused at once for this long
 * instead of each trying again (the apiserver retries anyway). */
#define DOWN_US 200000

struct kt_mq_producer {
  struct kt_mq_opts o;
  char *address, *prefix;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  redisContext *idle[POOL_MAX];
  size_t nidle, nopen;
  int64_t down_until_us;
  int was_down; /* for logging the change of state once */
  struct kt_metric *m_refused, *m_rejected;
  struct kt_series *s_produced;
};

/* One valid event, ready to add. */
struct msg {
  unsigned part;
  char *json;
};

int kt_mq_producer_new(const struct kt_mq_opts *o, struct kt_mq_producer **out)
{
  struct kt_mq_producer *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->o = *o;
  p->address = strdup(o->address);
  p->prefix = strdup(o->prefix);
  if (!p->address || !p->prefix) {
    free(p->address);
    free(p->prefix);
    free(p);
    return -ENOMEM;
  }
  p->o.address = p->address;
  p->o.prefix = p->prefix;
  p->o.group = NULL; /* not ours */
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  struct kt_metrics *r = kt_metrics_default();
  p->m_refused = kt_metrics_counter(r, "audit_mq_refused_total",
      "Webhook requests refused by the Redis queue, by reason",
      (const char *const[]){"reason", NULL});
  p->m_rejected = kt_metrics_counter(r, "audit_rejected_total",
      "Audit events refused at ingest, by reason",
      (const char *const[]){"reason", NULL});
  p->s_produced = kt_metric_series(kt_metrics_counter(r,
      "audit_mq_produced_total", "Audit events added to the Redis streams",
      NULL), NULL);
  *out = p;
  return 0;
}

void kt_mq_producer_free(struct kt_mq_producer *p)
{
  if (!p)
    return;
  for (size_t i = 0; i < p->nidle; i++)
    redisFree(p->idle[i]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p->address);
  free(p->prefix);
  free(p);
}

/* A connection from the pool, a new one, or NULL when Redis is down. */
static redisContext *get_conn(struct kt_mq_producer *p)
{
  pthread_mutex_lock(&p->mu);
  while (!p->nidle && p->nopen >= POOL_MAX)
    pthread_cond_wait(&p->cv, &p->mu);
  if (p->nidle) {
    redisContext *c = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    return c;
  }
  if (kt_mono_us() < p->down_until_us) {
    pthread_mutex_unlock(&p->mu);
    return NULL;
  }
  p->nopen++;
  pthread_mutex_unlock(&p->mu);
  redisContext *c = kt_mq_connect(&p->o);
  pthread_mutex_lock(&p->mu);
  if (!c) {
    p->nopen--;
    p->down_until_us = kt_mono_us() + DOWN_US;
    if (!p->was_down)
      kt_warn("mq: Redis %s unreachable: the webhook answers 503 until it "
              "is back", p->o.address);
    p->was_down = 1;
  } else if (p->was_down) {
    kt_info("mq: Redis %s reachable again", p->o.address);
    p->was_down = 0;
  }
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return c;
}

/* broken: the connection is in an unknown state and is closed. */
static void put_conn(struct kt_mq_producer *p, redisContext *c, int broken)
{
  pthread_mutex_lock(&p->mu);
  if (broken || p->nidle >= POOL_MAX) {
    redisFree(c);
    p->nopen--;
  } else {
    p->idle[p->nidle++] = c;
  }
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void reject(struct kt_mq_producer *p, struct kt_submit_result *res,
                   int index, enum kt_audit_err e, const char *err)
{
  res->rejected++;
  kt_metric_inc(p->m_rejected, (const char *const[]){kt_audit_err_name(e)});
  if (res->first_bad < 0) {
    res->first_bad = index;
    res->first_reason = kt_audit_err_name(e);
    snprintf(res->first_err, sizeof res->first_err, "%s", err);
  }
}

/* Secret values never reach Redis (whose AOF is a file on disk). */
static void sanitize(struct kt_audit_event *ev)
{
  if (!ev->resource || strcmp(ev->resource, "secrets") ||
      (ev->api_group && *ev->api_group))
    return;
  kt_decorator_sanitize(cJSON_GetObjectItemCaseSensitive(ev->json, "requestObject"),
                        "", "secrets");
  kt_decorator_sanitize(cJSON_GetObjectItemCaseSensitive(ev->json, "responseObject"),
                        "", "secrets");
}

/* Validates every item into msgs (partition + JSON text); *n valid ones. */
static int prepare(struct kt_mq_producer *p, const char *cluster, cJSON *items,
                   int single, struct msg *msgs, size_t *n,
                   struct kt_submit_result *res)
{
  size_t total = single ? 1 : (size_t)cJSON_GetArraySize(items);
  *n = 0;
  for (size_t i = 0; i < total; i++) {
    cJSON *item = single ? items : cJSON_DetachItemFromArray(items, 0);
    struct kt_audit_event ev;
    char err[256], key[1200];
    enum kt_audit_err e = kt_audit_event_init(&ev, item, cluster, err, sizeof err);
    if (e != KT_AUDIT_OK) {
      reject(p, res, (int)i, e, err);
      continue;
    }
    sanitize(&ev);
    kt_mq_key_of(p->o.key, &ev, key, sizeof key);
    msgs[*n].part = kt_mq_partition(key, p->o.partitions);
    msgs[*n].json = cJSON_PrintUnformatted(ev.json);
    kt_audit_event_free(&ev);
    if (!msgs[*n].json)
      return -ENOMEM;
    (*n)++;
  }
  return 0;
}

/* -EAGAIN when a partition the batch goes to is at its limit. XLEN is
 * O(1); a batch may overshoot the limit by its own size, no more. */
static int check_room(struct kt_mq_producer *p, redisContext *c,
                      const struct msg *msgs, size_t n, int *broken)
{
  unsigned char *seen = calloc(p->o.partitions, 1);
  char key[256];
  size_t asked = 0;
  int rc = 0;
  if (!seen)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (seen[msgs[i].part]++)
      continue;
    kt_mq_stream_key(&p->o, msgs[i].part, key, sizeof key);
    redisAppendCommand(c, "XLEN %s", key);
    asked++;
  }
  free(seen);
  for (size_t i = 0; i < asked; i++) {
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
      *broken = 1;
      return -ENOTCONN;
    }
    if (r->type == REDIS_REPLY_ERROR)
      rc = rc ? rc : -EIO;
    else if (r->type == REDIS_REPLY_INTEGER && (size_t)r->integer >= p->o.max_len)
      rc = rc ? rc : -EAGAIN;
    freeReplyObject(r);
  }
  return rc;
}

/* Every XADD of the batch in one round trip; 0 once all are in. */
static int add_all(struct kt_mq_producer *p, redisContext *c,
                   const char *cluster, const char *source,
                   const struct msg *msgs, size_t n, int *broken)
{
  char key[256];
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    kt_mq_stream_key(&p->o, msgs[i].part, key, sizeof key);
    const char *argv[] = {"XADD", key, "*", "e", msgs[i].json, "c", cluster,
                          "s", source};
    redisAppendCommandArgv(c, 9, argv, NULL);
  }
  for (size_t i = 0; i < n; i++) {
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
      *broken = 1;
      return -ENOTCONN;
    }
    if (r->type != REDIS_REPLY_STRING) {
      if (!rc)
        kt_warn("mq: XADD refused: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
      rc = -EIO;
    }
    freeReplyObject(r);
  }
  return rc;
}

static const char *reason_of(int rc)
{
  return rc == -EAGAIN ? "queue_full" : rc == -ENOTCONN ? "unavailable"
                                                        : "redis_error";
}

int kt_mq_produce(struct kt_mq_producer *p, const char *cluster,
                  const char *source_addr, cJSON *items, int single,
                  struct kt_submit_result *res)
{
  size_t total = single ? 1 : (size_t)cJSON_GetArraySize(items), n = 0;
  memset(res, 0, sizeof *res);
  res->first_bad = -1;
  if (!total)
    return 0;
  struct msg *msgs = calloc(total, sizeof *msgs);
  if (!msgs) {
    if (single) /* ours: the caller releases only the arena reference */
      cJSON_Delete(items);
    return -ENOMEM;
  }
  int rc = prepare(p, cluster, items, single, msgs, &n, res);
  if (!rc && n) {
    int broken = 0;
    redisContext *c = get_conn(p);
    rc = c ? check_room(p, c, msgs, n, &broken) : -ENOTCONN;
    if (!rc)
      rc = add_all(p, c, cluster, source_addr ? source_addr : "", msgs, n,
                   &broken);
    if (c)
      put_conn(p, c, broken);
  }
  for (size_t i = 0; i < total; i++)
    free(msgs[i].json);
  free(msgs);
  if (rc) {
    kt_metric_inc(p->m_refused, (const char *const[]){reason_of(rc)});
    return rc;
  }
  res->accepted = n;
  kt_series_add(p->s_produced, (double)n);
  return 0;
}
