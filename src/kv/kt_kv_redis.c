/* kt_kv_redis: the Redis backend of kt_kv (hiredis 0.14, blocking API).
 *
 * Every key is a hash {v: value, rev: version}. Versions are random
 * 64-bit numbers chosen by the writer: a per-key counter would restart at
 * 1 when a key expires and is created again, and a stale compare-and-set
 * could then match (ABA). Writes that must be atomic (create-if-absent,
 * compare-and-set, put with its TTL) are Lua scripts, run by EVALSHA and
 * re-sent with EVAL when the server lost its script cache (a restart).
 *
 * Connections: a pool of at most max_conns, each used by one thread at a
 * time, so threads do not queue behind one another's round trips. A
 * connection that fails is dropped; the next call dials again, which is
 * how the client gets over a server restart. A reused connection that
 * turns out to be dead is retried once on a fresh one before the call
 * counts as failed. */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/kt_log.h"
#include "kv/kt_kv.h"
#include "store/kt_span.h"

enum { S_PUT, S_CREATE, S_CAS, NSCRIPTS };

/* KEYS[1] key; ARGV[1] value, ARGV[2] new rev, ARGV[3] ttl ms (0 = none),
 * ARGV[4] (cas) expected rev. */
#define SET_BODY                                                        \
  "redis.call('DEL', KEYS[1]) "                                         \
  "redis.call('HSET', KEYS[1], 'v', ARGV[1], 'rev', ARGV[2]) "          \
  "if tonumber(ARGV[3]) > 0 then "                                      \
  "redis.call('PEXPIRE', KEYS[1], ARGV[3]) end "

static const char *const scripts[NSCRIPTS] = {
    [S_PUT] = SET_BODY "return 1",
    [S_CREATE] = "local cur = redis.call('HMGET', KEYS[1], 'v', 'rev') "
                 "if cur[2] then return {0, cur[1], cur[2]} end " SET_BODY
                 "return {1}",
    [S_CAS] = "if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[4] then "
              "return 0 end " SET_BODY "return 1",
};

struct rconn {
  redisContext *ctx;
  struct rconn *next;
};

struct redis {
  char host[256];
  int port;
  struct timeval dial, op;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct rconn *idle;
  int total, max;
  char sha[NSCRIPTS][48];
  struct kt_kv_health *h;
};

static struct rconn *dial(struct redis *r, char *why, size_t whylen)
{
  redisContext *ctx = redisConnectWithTimeout(r->host, r->port, r->dial);
  if (!ctx || ctx->err) {
    snprintf(why, whylen, "connect: %s", ctx ? ctx->errstr : "out of memory");
    redisFree(ctx);
    return NULL;
  }
  redisSetTimeout(ctx, r->op);
  struct rconn *c = calloc(1, sizeof *c);
  if (!c) {
    redisFree(ctx);
    snprintf(why, whylen, "out of memory");
    return NULL;
  }
  c->ctx = ctx;
  return c;
}

/* An idle connection, or a new one while below max; else waits. *fresh
 * tells whether it was just dialled. NULL when dialling failed. */
static struct rconn *take(struct redis *r, int *fresh, char *why, size_t wl)
{
  pthread_mutex_lock(&r->mu);
  while (!r->idle && r->total >= r->max)
    pthread_cond_wait(&r->cv, &r->mu);
  struct rconn *c = r->idle;
  if (c) {
    r->idle = c->next;
    pthread_mutex_unlock(&r->mu);
    *fresh = 0;
    return c;
  }
  r->total++;
  pthread_mutex_unlock(&r->mu);
  *fresh = 1;
  c = dial(r, why, wl);
  if (!c) {
    pthread_mutex_lock(&r->mu);
    r->total--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
  }
  return c;
}

static void give(struct redis *r, struct rconn *c, int broken)
{
  pthread_mutex_lock(&r->mu);
  if (broken) {
    redisFree(c->ctx);
    free(c);
    r->total--;
  } else {
    c->next = r->idle;
    r->idle = c;
  }
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* Error replies that mean "the server cannot serve now", not "bad call". */
static int transient_error(const char *s)
{
  static const char *const p[] = {"LOADING", "BUSY", "MASTERDOWN", "READONLY",
                                  "MISCONF", "TRYAGAIN", "CLUSTERDOWN"};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
    if (!strncmp(s, p[i], strlen(p[i])))
      return 1;
  return 0;
}

/* One command. NULL with *rc = -EIO when the server cannot be reached or
 * answers a transient error; error replies otherwise are returned as they
 * are (the caller decides). */
static redisReply *command(struct redis *r, const char *op, int argc,
                           const char **argv, const size_t *lens, int *rc)
{
  char why[256] = "";
  for (int attempt = 0; attempt < 2; attempt++) {
    int fresh;
    struct rconn *c = take(r, &fresh, why, sizeof why);
    if (!c)
      break;
    redisReply *rep = redisCommandArgv(c->ctx, argc, argv, lens);
    if (!rep) {
      snprintf(why, sizeof why, "%s", c->ctx->errstr);
      give(r, c, 1);
      if (fresh)
        break;
      continue; /* a pooled connection from before a restart */
    }
    give(r, c, 0);
    if (rep->type == REDIS_REPLY_ERROR && transient_error(rep->str)) {
      snprintf(why, sizeof why, "%s", rep->str);
      freeReplyObject(rep);
      break;
    }
    kt__kv_ok(r->h);
    *rc = 0;
    return rep;
  }
  kt__kv_failed(r->h, op, why);
  *rc = -EIO;
  return NULL;
}

static int is_error(const redisReply *rep, const char *prefix)
{
  return rep->type == REDIS_REPLY_ERROR &&
         !strncmp(rep->str, prefix, strlen(prefix));
}

static int bad_reply(struct redis *r, const char *op, redisReply *rep)
{
  kt_error("kv: redis %s: %s: unexpected reply %s", r->host, op,
           rep->type == REDIS_REPLY_ERROR ? rep->str : "(wrong type)");
  freeReplyObject(rep);
  return -EPROTO;
}

/* Runs script s on key with args; EVALSHA first, EVAL when the server
 * does not know the script (never loaded, or restarted since). */
static redisReply *eval(struct redis *r, const char *op, int s,
                        const char *key, const char **args,
                        const size_t *alens, int nargs, int *rc)
{
  const char *argv[10];
  size_t lens[10];
  pthread_mutex_lock(&r->mu);
  char sha[48];
  memcpy(sha, r->sha[s], sizeof sha);
  pthread_mutex_unlock(&r->mu);
  argv[0] = sha[0] ? "EVALSHA" : "EVAL";
  argv[1] = sha[0] ? sha : scripts[s];
  argv[2] = "1";
  argv[3] = key;
  for (int i = 0; i < 4; i++)
    lens[i] = strlen(argv[i]);
  for (int i = 0; i < nargs; i++) {
    argv[4 + i] = args[i];
    lens[4 + i] = alens[i];
  }
  redisReply *rep = command(r, op, 4 + nargs, argv, lens, rc);
  if (rep && sha[0] && is_error(rep, "NOSCRIPT")) {
    freeReplyObject(rep);
    argv[0] = "EVAL";
    argv[1] = scripts[s];
    lens[0] = 4;
    lens[1] = strlen(scripts[s]);
    rep = command(r, op, 4 + nargs, argv, lens, rc);
  }
  if (rep && !sha[0] && rep->type != REDIS_REPLY_ERROR) {
    /* The script is cached by the server now: learn its SHA once. */
    const char *la[] = {"SCRIPT", "LOAD", scripts[s]};
    size_t ll[] = {6, 4, strlen(scripts[s])};
    int lrc;
    redisReply *sr = command(r, op, 3, la, ll, &lrc);
    if (sr && sr->type == REDIS_REPLY_STRING && sr->len < 48) {
      pthread_mutex_lock(&r->mu);
      memcpy(r->sha[s], sr->str, sr->len);
      r->sha[s][sr->len] = 0;
      pthread_mutex_unlock(&r->mu);
    }
    if (sr)
      freeReplyObject(sr);
  }
  return rep;
}

static uint64_t new_rev(char *buf, size_t len)
{
  uint64_t v;
  do
    v = kt_random_u64();
  while (!v);
  snprintf(buf, len, "%" PRIu64, v);
  return v;
}

static void ttl_ms(int64_t ttl_us, char *buf, size_t len)
{
  snprintf(buf, len, "%lld", ttl_us > 0 ? (long long)((ttl_us + 999) / 1000) : 0LL);
}

static int copy_val(const redisReply *v, const redisReply *rev,
                    struct kt_kv_val *out)
{
  out->data = malloc(v->len + 1);
  if (!out->data)
    return -ENOMEM;
  memcpy(out->data, v->str, v->len);
  out->data[v->len] = 0;
  out->len = v->len;
  out->ver = strtoull(rev->str, NULL, 10);
  return 0;
}

static int r_get(void *impl, const char *key, struct kt_kv_val *out)
{
  struct redis *r = impl;
  const char *argv[] = {"HMGET", key, "v", "rev"};
  size_t lens[] = {5, strlen(key), 1, 3};
  int rc;
  redisReply *rep = command(r, "get", 4, argv, lens, &rc);
  if (!rep)
    return rc;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
    return bad_reply(r, "get", rep);
  if (rep->element[0]->type != REDIS_REPLY_STRING ||
      rep->element[1]->type != REDIS_REPLY_STRING)
    rc = -ENOENT;
  else
    rc = copy_val(rep->element[0], rep->element[1], out);
  freeReplyObject(rep);
  return rc;
}

static int r_write(struct redis *r, const char *op, int s, const char *key,
                   const void *data, size_t len, int64_t ttl_us,
                   const char *expect, uint64_t *ver, redisReply **reply)
{
  char rev[24], ttl[24];
  uint64_t v = new_rev(rev, sizeof rev);
  ttl_ms(ttl_us, ttl, sizeof ttl);
  const char *args[] = {data, rev, ttl, expect};
  size_t lens[] = {len, strlen(rev), strlen(ttl), expect ? strlen(expect) : 0};
  int rc;
  redisReply *rep = eval(r, op, s, key, args, lens, expect ? 4 : 3, &rc);
  if (!rep)
    return rc;
  if (rep->type == REDIS_REPLY_ERROR)
    return bad_reply(r, op, rep);
  if (ver)
    *ver = v;
  *reply = rep;
  return 0;
}

static int r_put(void *impl, const char *key, const void *data, size_t len,
                 int64_t ttl_us, uint64_t *ver)
{
  redisReply *rep;
  int rc = r_write(impl, "put", S_PUT, key, data, len, ttl_us, NULL, ver, &rep);
  if (!rc)
    freeReplyObject(rep);
  return rc;
}

static int r_create(void *impl, const char *key, const void *data, size_t len,
                    int64_t ttl_us, struct kt_kv_val *out)
{
  struct redis *r = impl;
  redisReply *rep;
  int rc = r_write(r, "create", S_CREATE, key, data, len, ttl_us, NULL,
                   &out->ver, &rep);
  if (rc)
    return rc;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
    return bad_reply(r, "create", rep);
  if (rep->element[0]->integer == 1) {
    freeReplyObject(rep);
    return 0;
  }
  if (rep->elements != 3 || rep->element[1]->type != REDIS_REPLY_STRING ||
      rep->element[2]->type != REDIS_REPLY_STRING)
    return bad_reply(r, "create", rep);
  rc = copy_val(rep->element[1], rep->element[2], out);
  freeReplyObject(rep);
  return rc ? rc : -EEXIST;
}

static int r_cas(void *impl, const char *key, uint64_t expect,
                 const void *data, size_t len, int64_t ttl_us, uint64_t *ver)
{
  char exp[24];
  redisReply *rep;
  snprintf(exp, sizeof exp, "%" PRIu64, expect);
  int rc = r_write(impl, "cas", S_CAS, key, data, len, ttl_us, exp, ver, &rep);
  if (rc)
    return rc;
  rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1 ? 0 : -ESTALE;
  freeReplyObject(rep);
  return rc;
}

static int r_del(void *impl, const char *key)
{
  const char *argv[] = {"DEL", key};
  size_t lens[] = {3, strlen(key)};
  int rc;
  redisReply *rep = command(impl, "del", 2, argv, lens, &rc);
  if (rep)
    freeReplyObject(rep);
  return rc;
}

static void r_free(void *impl)
{
  struct redis *r = impl;
  for (struct rconn *c = r->idle, *n; c; c = n) {
    n = c->next;
    redisFree(c->ctx);
    free(c);
  }
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static const struct kt_kv_ops redis_ops = {r_get, r_put, r_create, r_cas,
                                           r_del, r_free};

static struct timeval tv_of(int64_t us, int64_t def)
{
  if (us <= 0)
    us = def;
  return (struct timeval){us / 1000000, us % 1000000};
}

/* "host:port", "host" (6379) or "redis://host:port". */
static int parse_address(struct redis *r, const char *a)
{
  if (!strncmp(a, "redis://", 8))
    a += 8;
  const char *colon = strrchr(a, ':');
  size_t hl = colon ? (size_t)(colon - a) : strlen(a);
  if (!hl || hl >= sizeof r->host)
    return -EINVAL;
  memcpy(r->host, a, hl);
  r->host[hl] = 0;
  r->port = 6379;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 1 || p > 65535)
      return -EINVAL;
    r->port = (int)p;
  }
  return 0;
}

int kt_kv_redis_new(const struct kt_kv_opts *o, struct kt_kv **out)
{
  struct kt_kv *kv = calloc(1, sizeof *kv);
  struct redis *r = calloc(1, sizeof *r);
  if (!kv || !r) {
    free(kv);
    free(r);
    return -ENOMEM;
  }
  if (!o->address || parse_address(r, o->address)) {
    kt_error("kv: invalid redis address '%s' (host:port)",
             o->address ? o->address : "");
    free(kv);
    free(r);
    return -EINVAL;
  }
  r->dial = tv_of(o->dial_timeout_us, 10000000);
  r->op = tv_of(o->op_timeout_us, 5000000);
  r->max = o->max_conns > 0 ? o->max_conns : 16;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  kt__kv_init(kv, "redis", o->address);
  r->h = &kv->health;
  kv->ops = &redis_ops;
  kv->impl = r;
  *out = kv;
  return 0;
}
