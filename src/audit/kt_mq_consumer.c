/* kt_mq_consumer: see the header. Three threads, each with its own Redis
 * connection (a blocking XREADGROUP must not hold up the others):
 *   leases   heartbeat in the members zset, renew, take and give back
 *            partitions, publish the lag;
 *   reader   claim a new partition's leftovers, then XREADGROUP the owned
 *            partitions while the in-process queue has room;
 *   acker    once processed entries are on the ack list: kt_store_flush,
 *            then XACK + XDEL in one MULTI per partition (an acknowledged
 *            entry never lingers in the stream, where it would count
 *            against --mq-redis-max-len forever). */
#include "audit/kt_mq_consumer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/kt_consumer.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "store/kt_span.h"
#include "store/kt_store.h"

#define READ_BLOCK_MS "200"
#define READ_COUNT_MAX 512
#define PENDING_PAGE 256
/* An entry delivered this many times has most likely crashed every
 * consumer that took it: it goes to <prefix>:dead instead (capped). */
#define MAX_DELIVERIES 10
#define DEAD_MAXLEN "10000"
#define BACKOFF_MIN_US 100000
#define BACKOFF_MAX_US 2000000

static const char HEARTBEAT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "return redis.call('ZCARD', KEYS[1])\n";
static const char RENEW_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\nreturn 0\n";
static const char RELEASE_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\nreturn 0\n";

struct part {
  char stream[256], lease[256];
  int owned;          /* lease held */
  int releasing;      /* above our share: no new reads, lease given back
                       * once inflight is 0 */
  int claimed;        /* no former owner's entry left pending (checked) */
  int64_t claim_at_us; /* next look at the pending list (mono) */
  int64_t renewed_us;  /* last renewal (mono) */
  size_t inflight;     /* read and not yet acknowledged */
  /* Their ids: an entry pending for us but not in here was read by an
   * XREADGROUP whose answer was lost (connection broken), and is read
   * again by the next claim. */
  struct kt_map ids;
  struct kt_series *s_lag;
};

/* One stream entry in process; freed once acknowledged. */
struct msg {
  struct kt_ticket t; /* first: the ticket's address is the message's */
  struct kt_mq_consumer *m;
  struct msg *next;
  unsigned part;
  char id[48];
};

struct kt_mq_consumer {
  struct kt_mq_opts o;
  char *address, *prefix, *group;
  char name[160], members[256], ttl_ms[24];
  struct kt_consumer *c;
  struct kt_store *st;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* acks queued, inflight changed, stopping */
  struct part *parts;
  struct msg *acks;  /* processed, waiting for XACK */
  int stop_reading, stop;
  int64_t ack_deadline_us; /* while stopping: give up acknowledging then */
  pthread_t reader, leaser, acker;
  int started;
  struct kt_series *s_consumed, *s_claimed, *s_acked, *s_owned, *s_dead;
  struct kt_metric *m_errors;
};

static void count_error(struct kt_mq_consumer *m, const char *op)
{
  kt_metric_inc(m->m_errors, (const char *const[]){op});
}

static void sleep_us(int64_t us)
{
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* Waits on the condition for at most us; called with mu held. */
static void wait_us(struct kt_mq_consumer *m, int64_t us)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(us / 1000000);
  ts.tv_nsec += (long)(us % 1000000) * 1000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_cond_timedwait(&m->cv, &m->mu, &ts);
}

/* A reply, or NULL after freeing a broken connection (*c = NULL). */
static redisReply *cmd(redisContext **c, int argc, const char **argv)
{
  redisReply *r = kt_mq_cmd(*c, argc, argv);
  if (!r) {
    redisFree(*c);
    *c = NULL;
  }
  return r;
}

static redisReply *eval(redisContext **c, const char *script, const char *key,
                        const char *a1, const char *a2)
{
  const char *argv[] = {"EVAL", script, "1", key, a1, a2};
  return cmd(c, a2 ? 6 : 5, argv);
}

/* ---- acknowledgement ---- */

static void msg_done(struct kt_ticket *t)
{
  struct msg *g = (struct msg *)t;
  struct kt_mq_consumer *m = g->m;
  pthread_mutex_lock(&m->mu);
  g->next = m->acks;
  m->acks = g;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
}

/* MULTI, XACK and XDEL of the ids of partition p in list, EXEC: appended
 * to the pipeline; returns the number of replies to read (0 if none). */
static int append_ack(struct kt_mq_consumer *m, redisContext *c, unsigned p,
                      struct msg *list)
{
  size_t n = 0, i = 0;
  for (struct msg *g = list; g; g = g->next)
    n += g->part == p;
  if (!n)
    return 0;
  const char **ack = malloc((n + 3) * sizeof *ack);
  const char **del = malloc((n + 2) * sizeof *del);
  if (!ack || !del) {
    free(ack);
    free(del);
    return -ENOMEM;
  }
  ack[0] = "XACK", ack[1] = m->parts[p].stream, ack[2] = m->group;
  del[0] = "XDEL", del[1] = m->parts[p].stream;
  for (struct msg *g = list; g; g = g->next)
    if (g->part == p) {
      ack[3 + i] = g->id;
      del[2 + i] = g->id;
      i++;
    }
  redisAppendCommand(c, "MULTI");
  redisAppendCommandArgv(c, (int)(n + 3), ack, NULL);
  redisAppendCommandArgv(c, (int)(n + 2), del, NULL);
  redisAppendCommand(c, "EXEC");
  free(ack);
  free(del);
  return 4;
}

/* 0 once every entry of list is acknowledged and deleted. */
static int ack_list(struct kt_mq_consumer *m, redisContext **c, struct msg *list)
{
  int replies = 0, rc = 0;
  for (unsigned p = 0; p < m->o.partitions; p++) {
    int n = append_ack(m, *c, p, list);
    if (n < 0) { /* replies already asked for would be out of step */
      redisFree(*c);
      *c = NULL;
      return n;
    }
    replies += n;
  }
  for (int i = 0; i < replies; i++) {
    redisReply *r = NULL;
    if (redisGetReply(*c, (void **)&r) != REDIS_OK || !r) {
      redisFree(*c);
      *c = NULL;
      return -ENOTCONN;
    }
    /* EXEC answers an array; nil (aborted) or an error is a failure. */
    if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL)
      rc = -EIO;
    freeReplyObject(r);
  }
  return rc;
}

static void requeue(struct kt_mq_consumer *m, struct msg *list)
{
  pthread_mutex_lock(&m->mu);
  while (list) {
    struct msg *g = list;
    list = g->next;
    g->next = m->acks;
    m->acks = g;
  }
  pthread_mutex_unlock(&m->mu);
}

static void acked(struct kt_mq_consumer *m, struct msg *list)
{
  size_t n = 0;
  pthread_mutex_lock(&m->mu);
  for (struct msg *g = list; g; g = g->next, n++) {
    m->parts[g->part].inflight--;
    kt_map_del(&m->parts[g->part].ids, g->id);
  }
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  while (list) {
    struct msg *g = list;
    list = g->next;
    free(g);
  }
  kt_series_add(m->s_acked, (double)n);
}

static void *acker_main(void *p)
{
  struct kt_mq_consumer *m = p;
  redisContext *c = NULL;
  int64_t backoff = BACKOFF_MIN_US;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (!m->acks && !m->stop)
      wait_us(m, 100000);
    if (m->stop && (!m->acks || kt_mono_us() > m->ack_deadline_us))
      break;
    struct msg *list = m->acks;
    m->acks = NULL;
    pthread_mutex_unlock(&m->mu);
    /* The spans were put before the tickets were done; this commits them,
     * and only then may the entries leave the stream. */
    int rc = kt_store_flush(m->st);
    if (!rc && !c)
      rc = (c = kt_mq_connect(&m->o)) ? 0 : -ENOTCONN;
    if (!rc)
      rc = ack_list(m, &c, list);
    if (rc) {
      count_error(m, "ack");
      requeue(m, list);
      sleep_us(backoff);
      backoff = backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff * 2;
    } else {
      acked(m, list);
      backoff = BACKOFF_MIN_US;
    }
    pthread_mutex_lock(&m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  if (c)
    redisFree(c);
  return NULL;
}

/* ---- reading ---- */

static const redisReply *field(const redisReply *fields, const char *name)
{
  if (!fields || fields->type != REDIS_REPLY_ARRAY)
    return NULL;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const redisReply *k = fields->element[i], *v = fields->element[i + 1];
    if (k->type == REDIS_REPLY_STRING && !strcmp(k->str, name) &&
        v->type == REDIS_REPLY_STRING)
      return v;
  }
  return NULL;
}

/* Hands one entry ([id, [field, value, ...]]) to the in-process consumer.
 * A malformed entry is acknowledged at once (it can never become good). */
static void submit(struct kt_mq_consumer *m, unsigned p, const redisReply *e,
                   int redelivered)
{
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
      e->element[0]->type != REDIS_REPLY_STRING)
    return;
  struct msg *g = calloc(1, sizeof *g);
  if (!g)
    return; /* stays pending: claimed again later */
  atomic_init(&g->t.pending, 1);
  g->t.done = msg_done;
  g->m = m;
  g->part = p;
  snprintf(g->id, sizeof g->id, "%s", e->element[0]->str);
  pthread_mutex_lock(&m->mu);
  if (kt_map_get(&m->parts[p].ids, g->id)) { /* claimed while in flight */
    pthread_mutex_unlock(&m->mu);
    free(g);
    return;
  }
  m->parts[p].inflight++;
  kt_map_put(&m->parts[p].ids, g->id, g, NULL);
  pthread_mutex_unlock(&m->mu);
  const redisReply *ev = field(e->element[1], "e"), *cl = field(e->element[1], "c"),
                   *src = field(e->element[1], "s");
  cJSON *item = ev ? cJSON_ParseWithLength(ev->str, ev->len) : NULL;
  if (!item || !cl) {
    kt_warn("mq: %s %s: malformed entry, dropped", m->parts[p].stream, g->id);
    cJSON_Delete(item);
    kt_ticket_release(&g->t);
    return;
  }
  struct kt_submit_result res;
  int rc = kt_consumer_submit_ticket(m->c, cl->str, src ? src->str : "", item,
                                     1, 1, &g->t, redelivered, &res);
  if (rc) { /* shutting down: leave it pending for the next owner */
    cJSON_Delete(item);
    pthread_mutex_lock(&m->mu);
    m->parts[p].inflight--;
    kt_map_del(&m->parts[p].ids, g->id);
    pthread_mutex_unlock(&m->mu);
    free(g);
    return;
  }
  kt_series_add(redelivered ? m->s_claimed : m->s_consumed, 1);
  kt_ticket_release(&g->t);
}

static int ensure_group(struct kt_mq_consumer *m, redisContext **c, unsigned p)
{
  const char *argv[] = {"XGROUP", "CREATE", m->parts[p].stream, m->group, "0",
                        "MKSTREAM"};
  redisReply *r = cmd(c, 6, argv);
  if (!r)
    return -ENOTCONN;
  int rc = r->type == REDIS_REPLY_ERROR && !kt_mq_is_error(r, "BUSYGROUP") ? -EIO : 0;
  freeReplyObject(r);
  return rc;
}

/* Moves one claimed entry to the dead-letter stream and acknowledges it
 * (XADD, then XACK + XDEL in one MULTI). */
static int bury(struct kt_mq_consumer *m, redisContext **c, unsigned p,
                const redisReply *e)
{
  if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 2)
    return 0;
  const redisReply *ev = field(e->element[1], "e"), *cl = field(e->element[1], "c");
  char dead[256];
  snprintf(dead, sizeof dead, "%s:dead", m->prefix);
  const char *id = e->element[0]->str;
  kt_error("mq: %s %s delivered %d times without being acknowledged: moved "
           "to %s", m->parts[p].stream, id, MAX_DELIVERIES, dead);
  const char *add[] = {"XADD", dead, "MAXLEN", "~", DEAD_MAXLEN, "*", "e",
                       ev ? ev->str : "", "c", cl ? cl->str : "", "from", id};
  redisAppendCommandArgv(*c, 12, add, NULL);
  redisAppendCommand(*c, "MULTI");
  redisAppendCommand(*c, "XACK %s %s %s", m->parts[p].stream, m->group, id);
  redisAppendCommand(*c, "XDEL %s %s", m->parts[p].stream, id);
  redisAppendCommand(*c, "EXEC");
  for (int i = 0; i < 5; i++) {
    redisReply *r = NULL;
    if (redisGetReply(*c, (void **)&r) != REDIS_OK || !r) {
      redisFree(*c);
      *c = NULL;
      return -ENOTCONN;
    }
    freeReplyObject(r);
  }
  kt_series_add(m->s_dead, 1);
  return 0;
}

/* Claims the listed ids for us and submits them as redelivered (or, with
 * dead, moves them to the dead-letter stream). */
static int claim_ids(struct kt_mq_consumer *m, redisContext **c, unsigned p,
                     const char **ids, size_t n, const char *min_idle, int dead)
{
  const char **argv = malloc((n + 5) * sizeof *argv);
  if (!argv)
    return -ENOMEM;
  argv[0] = "XCLAIM", argv[1] = m->parts[p].stream, argv[2] = m->group;
  argv[3] = m->name, argv[4] = min_idle;
  memcpy(argv + 5, ids, n * sizeof *ids);
  redisReply *r = cmd(c, (int)(n + 5), argv);
  free(argv);
  if (!r)
    return -ENOTCONN;
  int rc = 0;
  if (r->type == REDIS_REPLY_ARRAY && dead) {
    for (size_t i = 0; i < r->elements && !rc; i++)
      rc = bury(m, c, p, r->element[i]);
  } else if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; i++)
      submit(m, p, r->element[i], 1); /* nil: deleted meanwhile */
    if (r->elements)
      kt_info("mq: claimed %zu pending entries of %s from a former owner",
              r->elements, m->parts[p].stream);
  }
  freeReplyObject(r);
  return rc;
}

/* One look at partition p's pending list: claims what former owners left
 * idle long enough, and what was delivered to us but never reached us.
 * *left: entries of others still too fresh to claim; *wait_ms: how long
 * until the freshest of them may be claimed. */
static int claim_page(struct kt_mq_consumer *m, redisContext **c, unsigned p,
                      char *start, size_t *left, long long *wait_ms, int *more)
{
  long long idle_ms = (long long)(m->o.claim_idle_us / 1000);
  const char *argv[] = {"XPENDING", m->parts[p].stream, m->group, start, "+",
                        "256"};
  redisReply *r = cmd(c, 6, argv);
  if (!r)
    return -ENOTCONN;
  if (r->type != REDIS_REPLY_ARRAY) {
    freeReplyObject(r);
    return -EIO;
  }
  const char *ids[PENDING_PAGE], *dead[PENDING_PAGE];
  size_t n = 0, nd = 0;
  *more = r->elements >= PENDING_PAGE;
  for (size_t i = 0; i < r->elements && i < PENDING_PAGE; i++) {
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
      continue;
    const char *id = e->element[0]->str;
    int poison = e->element[3]->integer >= MAX_DELIVERIES;
    snprintf(start, 64, "(%s", id);
    if (!strcmp(e->element[1]->str, m->name)) {
      pthread_mutex_lock(&m->mu);
      int here = kt_map_get(&m->parts[p].ids, id) != NULL;
      pthread_mutex_unlock(&m->mu);
      if (!here && poison)
        dead[nd++] = id;
      else if (!here) /* its XREADGROUP answer was lost */
        ids[n++] = id;
    } else if (e->element[2]->integer >= idle_ms) {
      if (poison)
        dead[nd++] = id;
      else
        ids[n++] = id;
    } else {
      (*left)++;
      long long w = idle_ms - e->element[2]->integer;
      *wait_ms = *wait_ms > w ? *wait_ms : w;
    }
  }
  /* Idle times were checked above: a former owner cannot touch its
   * entries again, it can only acknowledge them. */
  int rc = nd ? claim_ids(m, c, p, dead, nd, "0", 1) : 0;
  if (!rc && n)
    rc = claim_ids(m, c, p, ids, n, "0", 0);
  freeReplyObject(r);
  return rc;
}

/* Before reading new entries of a partition just taken: the former
 * owner's pending ones first, so that one object's events keep their
 * order across the hand-over. */
static int claim(struct kt_mq_consumer *m, redisContext **c, unsigned p)
{
  int rc = ensure_group(m, c, p), more = 1;
  char start[64] = "-";
  size_t left = 0;
  long long wait_ms = 0;
  for (int page = 0; !rc && more && page < 1000; page++)
    rc = claim_page(m, c, p, start, &left, &wait_ms, &more);
  pthread_mutex_lock(&m->mu);
  if (!rc && !left)
    m->parts[p].claimed = 1;
  else
    m->parts[p].claim_at_us = kt_mono_us() + (rc ? 500000 : wait_ms * 1000 + 10000);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static unsigned partition_of_stream(struct kt_mq_consumer *m, const char *s)
{
  size_t pl = strlen(m->prefix);
  if (strncmp(s, m->prefix, pl) || s[pl] != ':')
    return m->o.partitions;
  char *end;
  unsigned long p = strtoul(s + pl + 1, &end, 10);
  return *end || p >= m->o.partitions ? m->o.partitions : (unsigned)p;
}

/* XREADGROUP of the partitions in list (n of them), count entries each. */
static int read_new(struct kt_mq_consumer *m, redisContext **c,
                    const unsigned *list, size_t n, size_t count)
{
  const char **argv = malloc((2 * n + 9) * sizeof *argv);
  char cnt[24];
  if (!argv)
    return -ENOMEM;
  snprintf(cnt, sizeof cnt, "%zu", count);
  size_t a = 0;
  argv[a++] = "XREADGROUP", argv[a++] = "GROUP", argv[a++] = m->group;
  argv[a++] = m->name, argv[a++] = "COUNT", argv[a++] = cnt;
  argv[a++] = "BLOCK", argv[a++] = READ_BLOCK_MS, argv[a++] = "STREAMS";
  for (size_t i = 0; i < n; i++)
    argv[a++] = m->parts[list[i]].stream;
  for (size_t i = 0; i < n; i++)
    argv[a++] = ">";
  redisReply *r = cmd(c, (int)a, argv);
  free(argv);
  if (!r)
    return -ENOTCONN;
  int rc = 0;
  if (kt_mq_is_error(r, "NOGROUP")) {
    /* Redis lost the group (restarted without persistence): make it
     * again before the next read. */
    kt_warn("mq: consumer group %s is gone (Redis lost its data?); "
            "creating it again", m->group);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++)
      m->parts[list[i]].claimed = 0;
    pthread_mutex_unlock(&m->mu);
    rc = -EIO;
  } else if (r->type == REDIS_REPLY_ERROR) {
    rc = -EIO;
  } else if (r->type == REDIS_REPLY_ARRAY) {
    for (size_t i = 0; i < r->elements; i++) {
      const redisReply *s = r->element[i];
      if (s->type != REDIS_REPLY_ARRAY || s->elements < 2)
        continue;
      unsigned p = partition_of_stream(m, s->element[0]->str);
      const redisReply *es = s->element[1];
      for (size_t j = 0; p < m->o.partitions && j < es->elements; j++)
        submit(m, p, es->element[j], 0);
    }
  }
  freeReplyObject(r);
  return rc;
}

/* What the reader does next: partitions to claim, partitions to read. */
static void plan(struct kt_mq_consumer *m, unsigned *to_claim, size_t *nclaim,
                 unsigned *to_read, size_t *nread)
{
  int64_t now = kt_mono_us();
  *nclaim = *nread = 0;
  pthread_mutex_lock(&m->mu);
  for (unsigned p = 0; p < m->o.partitions; p++) {
    struct part *pt = &m->parts[p];
    if (!pt->owned || pt->releasing)
      continue;
    if (pt->claimed)
      to_read[(*nread)++] = p;
    else if (pt->claim_at_us <= now)
      to_claim[(*nclaim)++] = p;
  }
  pthread_mutex_unlock(&m->mu);
}

static int reader_step(struct kt_mq_consumer *m, redisContext **c,
                       unsigned *to_claim, unsigned *to_read)
{
  size_t nclaim, nread;
  plan(m, to_claim, &nclaim, to_read, &nread);
  for (size_t i = 0; i < nclaim; i++)
    if (claim(m, c, to_claim[i]) == -ENOTCONN)
      return -ENOTCONN;
  size_t limit = kt_consumer_limit(m->c), depth = kt_consumer_depth(m->c);
  size_t room = limit > depth ? limit - depth : 0;
  if (!nread || room < nread) { /* nothing to read, or no room: wait */
    sleep_us(nread ? 20000 : 50000);
    return 0;
  }
  size_t count = room / nread;
  return read_new(m, c, to_read, nread, count > READ_COUNT_MAX ? READ_COUNT_MAX : count);
}

/* After a broken connection, a read's answer may have been lost: look at
 * the pending lists again before reading on. */
static void recheck_all(struct kt_mq_consumer *m)
{
  pthread_mutex_lock(&m->mu);
  for (unsigned p = 0; p < m->o.partitions; p++)
    m->parts[p].claimed = 0;
  pthread_mutex_unlock(&m->mu);
}

static void *reader_main(void *p)
{
  struct kt_mq_consumer *m = p;
  redisContext *c = NULL;
  int64_t backoff = BACKOFF_MIN_US;
  unsigned *to_claim = calloc(m->o.partitions, sizeof *to_claim);
  unsigned *to_read = calloc(m->o.partitions, sizeof *to_read);
  int64_t checked = kt_mono_us();
  for (;;) {
    /* Now and then, whatever the reason an entry was left behind. */
    if (kt_mono_us() - checked > m->o.claim_idle_us) {
      recheck_all(m);
      checked = kt_mono_us();
    }
    pthread_mutex_lock(&m->mu);
    int stop = m->stop_reading;
    pthread_mutex_unlock(&m->mu);
    if (stop || !to_claim || !to_read)
      break;
    if (!c && !(c = kt_mq_connect(&m->o))) {
      sleep_us(backoff);
      backoff = backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff * 2;
      continue;
    }
    int rc = reader_step(m, &c, to_claim, to_read);
    if (rc == -ENOTCONN)
      recheck_all(m);
    if (rc) {
      count_error(m, "read");
      sleep_us(rc == -ENOTCONN ? backoff : 100000);
      if (rc == -ENOTCONN)
        backoff = backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff * 2;
    } else {
      backoff = BACKOFF_MIN_US;
    }
  }
  free(to_claim);
  free(to_read);
  if (c)
    redisFree(c);
  return NULL;
}

/* ---- leases ---- */

/* Live consumers in the group (this one included), or -1. */
static long long heartbeat(struct kt_mq_consumer *m, redisContext **c)
{
  redisReply *r = eval(c, HEARTBEAT_LUA, m->members, m->name, m->ttl_ms);
  long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  if (r)
    freeReplyObject(r);
  return n;
}

static void lose(struct kt_mq_consumer *m, unsigned p, const char *why)
{
  pthread_mutex_lock(&m->mu);
  m->parts[p].owned = m->parts[p].releasing = 0;
  pthread_mutex_unlock(&m->mu);
  kt_warn("mq: lost partition %s (%s)", m->parts[p].stream, why);
}

/* Renews every lease held; a lease not renewed in time is given up. */
static int renew_all(struct kt_mq_consumer *m, redisContext **c)
{
  for (unsigned p = 0; p < m->o.partitions && *c; p++) {
    if (!m->parts[p].owned)
      continue;
    redisReply *r = eval(c, RENEW_LUA, m->parts[p].lease, m->name, m->ttl_ms);
    if (!r)
      return -ENOTCONN;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
      pthread_mutex_lock(&m->mu);
      m->parts[p].renewed_us = kt_mono_us();
      pthread_mutex_unlock(&m->mu);
    } else if (r->type == REDIS_REPLY_INTEGER) {
      lose(m, p, "lease taken over or expired");
    }
    freeReplyObject(r);
  }
  return 0;
}

/* Without Redis nothing can be renewed: past the lease's life, another
 * process may own the partition, so stop counting on it. */
static void expire_unrenewed(struct kt_mq_consumer *m)
{
  int64_t now = kt_mono_us();
  for (unsigned p = 0; p < m->o.partitions; p++)
    if (m->parts[p].owned && now - m->parts[p].renewed_us > m->o.claim_idle_us)
      lose(m, p, "Redis unreachable for longer than the lease");
}

static int try_take(struct kt_mq_consumer *m, redisContext **c, unsigned p)
{
  const char *argv[] = {"SET", m->parts[p].lease, m->name, "NX", "PX", m->ttl_ms};
  redisReply *r = cmd(c, 6, argv);
  if (!r)
    return -ENOTCONN;
  int got = r->type == REDIS_REPLY_STATUS;
  freeReplyObject(r);
  if (got) {
    pthread_mutex_lock(&m->mu);
    struct part *pt = &m->parts[p];
    pt->owned = 1;
    pt->releasing = pt->claimed = 0;
    pt->claim_at_us = 0;
    pt->renewed_us = kt_mono_us();
    pthread_mutex_unlock(&m->mu);
    kt_info("mq: took partition %s", pt->stream);
  }
  return got;
}

/* Takes free partitions up to share, marks the ones above it releasing,
 * and gives back the releasing ones with nothing left in flight. */
static int balance(struct kt_mq_consumer *m, redisContext **c, unsigned share)
{
  unsigned owned = 0, P = m->o.partitions;
  for (unsigned p = 0; p < P; p++)
    owned += m->parts[p].owned && !m->parts[p].releasing;
  /* Start where our name points, so that consumers starting together try
   * different partitions first. */
  unsigned first = (unsigned)(kt_hash(m->name, strlen(m->name)) % P);
  for (unsigned i = 0; i < P && owned < share; i++) {
    unsigned p = (first + i) % P;
    if (m->parts[p].owned)
      continue;
    int got = try_take(m, c, p);
    if (got < 0)
      return got;
    owned += (unsigned)got;
  }
  pthread_mutex_lock(&m->mu);
  for (unsigned p = P; p-- > 0 && owned > share;)
    if (m->parts[p].owned && !m->parts[p].releasing) {
      m->parts[p].releasing = 1;
      owned--;
      kt_info("mq: giving back partition %s (more consumers now)",
              m->parts[p].stream);
    }
  pthread_mutex_unlock(&m->mu);
  for (unsigned p = 0; p < P && *c; p++) {
    pthread_mutex_lock(&m->mu);
    int done = m->parts[p].owned && m->parts[p].releasing && !m->parts[p].inflight;
    pthread_mutex_unlock(&m->mu);
    if (!done)
      continue;
    redisReply *r = eval(c, RELEASE_LUA, m->parts[p].lease, m->name, NULL);
    if (!r)
      return -ENOTCONN;
    freeReplyObject(r);
    pthread_mutex_lock(&m->mu);
    m->parts[p].owned = m->parts[p].releasing = 0;
    pthread_mutex_unlock(&m->mu);
  }
  return 0;
}

/* audit_mq_lag{partition}: entries in each stream (not yet processed or
 * not yet acknowledged), as seen from here; and the partitions owned. */
static void publish(struct kt_mq_consumer *m, redisContext **c)
{
  unsigned owned = 0;
  for (unsigned p = 0; p < m->o.partitions; p++) {
    owned += m->parts[p].owned;
    redisAppendCommand(*c, "XLEN %s", m->parts[p].stream);
  }
  kt_series_set(m->s_owned, owned);
  for (unsigned p = 0; p < m->o.partitions; p++) {
    redisReply *r = NULL;
    if (redisGetReply(*c, (void **)&r) != REDIS_OK || !r) {
      redisFree(*c);
      *c = NULL;
      return;
    }
    if (r->type == REDIS_REPLY_INTEGER)
      kt_series_set(m->parts[p].s_lag, (double)r->integer);
    freeReplyObject(r);
  }
}

static void lease_tick(struct kt_mq_consumer *m, redisContext **c, int stopping)
{
  long long live = heartbeat(m, c);
  if (live < 1 || renew_all(m, c) || !*c)
    return;
  if (!stopping) {
    unsigned share = (m->o.partitions + (unsigned)live - 1) / (unsigned)live;
    if (balance(m, c, share) || !*c)
      return;
  }
  publish(m, c);
}

/* Gives every lease back (those with entries still in flight are left to
 * expire: their entries stay pending and are claimed after the idle time)
 * and leaves the members set. */
static void leave(struct kt_mq_consumer *m, redisContext **c)
{
  for (unsigned p = 0; p < m->o.partitions && *c; p++) {
    if (!m->parts[p].owned || m->parts[p].inflight)
      continue;
    redisReply *r = eval(c, RELEASE_LUA, m->parts[p].lease, m->name, NULL);
    if (r)
      freeReplyObject(r);
    m->parts[p].owned = 0;
  }
  if (*c) {
    const char *argv[] = {"ZREM", m->members, m->name};
    redisReply *r = cmd(c, 3, argv);
    if (r)
      freeReplyObject(r);
  }
  kt_series_set(m->s_owned, 0);
}

static void *leaser_main(void *p)
{
  struct kt_mq_consumer *m = p;
  redisContext *c = NULL;
  int was_down = 0;
  int64_t tick = m->o.claim_idle_us / 4;
  pthread_mutex_lock(&m->mu);
  while (!m->stop) {
    int stopping = m->stop_reading;
    pthread_mutex_unlock(&m->mu);
    if (!c && !(c = kt_mq_connect(&m->o))) {
      if (!was_down)
        kt_warn("mq: Redis %s unreachable: consuming paused", m->o.address);
      was_down = 1;
      count_error(m, "lease");
      expire_unrenewed(m);
    } else {
      if (was_down)
        kt_info("mq: Redis %s reachable again: consuming resumes", m->o.address);
      was_down = 0;
      lease_tick(m, &c, stopping);
      if (!c)
        expire_unrenewed(m);
    }
    pthread_mutex_lock(&m->mu);
    if (!m->stop)
      wait_us(m, tick);
  }
  pthread_mutex_unlock(&m->mu);
  if (!c)
    c = kt_mq_connect(&m->o);
  if (c) {
    leave(m, &c);
    if (c)
      redisFree(c);
  }
  return NULL;
}

/* ---- start / stop ---- */

static int copy_opts(struct kt_mq_consumer *m, const struct kt_mq_opts *o)
{
  m->o = *o;
  m->address = strdup(o->address);
  m->prefix = strdup(o->prefix);
  m->group = strdup(o->group);
  m->o.address = m->address;
  m->o.prefix = m->prefix;
  m->o.group = m->group;
  return m->address && m->prefix && m->group ? 0 : -ENOMEM;
}

static void free_consumer(struct kt_mq_consumer *m)
{
  while (m->acks) {
    struct msg *g = m->acks;
    m->acks = g->next;
    free(g);
  }
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  for (unsigned p = 0; m->parts && p < m->o.partitions; p++)
    kt_map_clear(&m->parts[p].ids, NULL);
  free(m->parts);
  free(m->address);
  free(m->prefix);
  free(m->group);
  free(m);
}

static void init_metrics(struct kt_mq_consumer *m)
{
  struct kt_metrics *r = kt_metrics_default();
  m->s_consumed = kt_metric_series(kt_metrics_counter(r, "audit_mq_consumed_total",
      "Audit events read from the Redis streams (first delivery)", NULL), NULL);
  m->s_claimed = kt_metric_series(kt_metrics_counter(r, "audit_mq_claimed_total",
      "Audit events claimed from a former owner of a partition (redelivered)",
      NULL), NULL);
  m->s_acked = kt_metric_series(kt_metrics_counter(r, "audit_mq_acked_total",
      "Stream entries acknowledged and deleted once their spans were committed",
      NULL), NULL);
  m->s_owned = kt_metric_series(kt_metrics_gauge(r, "audit_mq_partitions_owned",
      "Stream partitions this process reads", NULL), NULL);
  m->s_dead = kt_metric_series(kt_metrics_counter(r, "audit_mq_dead_letter_total",
      "Entries moved to <prefix>:dead after too many deliveries", NULL), NULL);
  m->m_errors = kt_metrics_counter(r, "audit_mq_redis_errors_total",
      "Failed Redis operations of the queue consumer, by operation",
      (const char *const[]){"op", NULL});
  struct kt_metric *lag = kt_metrics_gauge(r, "audit_mq_lag",
      "Entries in a stream partition not yet processed and acknowledged",
      (const char *const[]){"partition", NULL});
  for (unsigned p = 0; p < m->o.partitions; p++) {
    char ps[16];
    snprintf(ps, sizeof ps, "%u", p);
    m->parts[p].s_lag = kt_metric_series(lag, (const char *const[]){ps});
  }
}

int kt_mq_consumer_start(const struct kt_mq_opts *o, const char *name,
                         struct kt_consumer *c, struct kt_store *st,
                         struct kt_mq_consumer **out)
{
  struct kt_mq_consumer *m = calloc(1, sizeof *m);
  if (!m)
    return -ENOMEM;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  m->parts = calloc(o->partitions, sizeof *m->parts);
  if (!m->parts || copy_opts(m, o)) {
    free_consumer(m);
    return -ENOMEM;
  }
  m->c = c;
  m->st = st;
  if (name && *name) {
    snprintf(m->name, sizeof m->name, "%s", name);
  } else {
    char host[64] = "kelemetry";
    gethostname(host, sizeof host - 1);
    snprintf(m->name, sizeof m->name, "%s-%d-%04x", host, (int)getpid(),
             (unsigned)(kt_random_u64() & 0xffff));
  }
  snprintf(m->members, sizeof m->members, "%s:members", o->prefix);
  snprintf(m->ttl_ms, sizeof m->ttl_ms, "%lld", (long long)(o->claim_idle_us / 1000));
  for (unsigned p = 0; p < o->partitions; p++) {
    kt_map_init(&m->parts[p].ids);
    kt_mq_stream_key(o, p, m->parts[p].stream, sizeof m->parts[p].stream);
    kt_mq_lease_key(o, p, m->parts[p].lease, sizeof m->parts[p].lease);
  }
  init_metrics(m);
  if (pthread_create(&m->acker, NULL, acker_main, m)) {
    free_consumer(m);
    return -EAGAIN;
  }
  pthread_create(&m->reader, NULL, reader_main, m);
  pthread_create(&m->leaser, NULL, leaser_main, m);
  m->started = 1;
  kt_info("mq: consuming %s:0..%u as %s in group %s", o->prefix,
          o->partitions - 1, m->name, o->group);
  *out = m;
  return 0;
}

static size_t inflight(struct kt_mq_consumer *m)
{
  size_t n = 0;
  for (unsigned p = 0; p < m->o.partitions; p++)
    n += m->parts[p].inflight;
  return n;
}

void kt_mq_consumer_stop(struct kt_mq_consumer *m)
{
  if (!m)
    return;
  pthread_mutex_lock(&m->mu);
  m->stop_reading = 1;
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->reader, NULL);
  kt_consumer_wait_idle(m->c); /* every ticket done: all on the ack list */
  pthread_mutex_lock(&m->mu);
  int64_t budget = m->o.timeout_us > 0 ? m->o.timeout_us : 2000000;
  m->ack_deadline_us = kt_mono_us() + budget;
  while (inflight(m) && kt_mono_us() < m->ack_deadline_us)
    wait_us(m, 50000);
  if (inflight(m))
    kt_warn("mq: %zu entries processed but not acknowledged (Redis "
            "unreachable): they stay pending and are claimed after "
            "--mq-redis-claim-idle", inflight(m));
  m->stop = 1;
  pthread_cond_broadcast(&m->cv);
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->acker, NULL);
  pthread_join(m->leaser, NULL);
  free_consumer(m);
}

unsigned kt_mq_consumer_owned(struct kt_mq_consumer *m)
{
  unsigned n = 0;
  pthread_mutex_lock(&m->mu);
  for (unsigned p = 0; p < m->o.partitions; p++)
    n += m->parts[p].owned && !m->parts[p].releasing;
  pthread_mutex_unlock(&m->mu);
  return n;
}
