/* kt_mq: see the header. */
#include "audit/kt_mq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "audit/kt_audit.h"
#include "core/kt_log.h"
#include "core/kt_map.h"

int kt_mq_key_parse(const char *name, enum kt_mq_key *out)
{
  if (!strcmp(name, "object"))
    *out = KT_MQ_KEY_OBJECT;
  else if (!strcmp(name, "cluster"))
    *out = KT_MQ_KEY_CLUSTER;
  else if (!strcmp(name, "audit-id"))
    *out = KT_MQ_KEY_AUDIT_ID;
  else
    return -EINVAL;
  return 0;
}

void kt_mq_key_of(enum kt_mq_key k, const struct kt_audit_event *ev,
                  char *buf, size_t len)
{
  int n = snprintf(buf, len, "%s/", ev->cluster);
  if (n < 0 || (size_t)n >= len)
    return;
  if (k == KT_MQ_KEY_OBJECT)
    kt_audit_object_key(ev, buf + n, len - (size_t)n);
  else if (k == KT_MQ_KEY_AUDIT_ID)
    snprintf(buf + n, len - (size_t)n, "%s", ev->audit_id);
}

unsigned kt_mq_partition(const char *key, unsigned n)
{
  return n ? (unsigned)(kt_hash(key, strlen(key)) % n) : 0;
}

void kt_mq_stream_key(const struct kt_mq_opts *o, unsigned p, char *buf,
                      size_t len)
{
  snprintf(buf, len, "%s:%u", o->prefix, p);
}

void kt_mq_lease_key(const struct kt_mq_opts *o, unsigned p, char *buf,
                     size_t len)
{
  snprintf(buf, len, "%s:%u:lease", o->prefix, p);
}

int kt_mq_opts_check(const struct kt_mq_opts *o, char *err, size_t errlen)
{
  const char *colon = o->address ? strrchr(o->address, ':') : NULL;
  if (!colon || colon == o->address || atoi(colon + 1) <= 0)
    snprintf(err, errlen, "--mq-redis-address must be host:port");
  else if (o->partitions < 1 || o->partitions > 1024)
    snprintf(err, errlen, "--mq-redis-partitions must be 1..1024");
  else if (!o->prefix || !*o->prefix || strlen(o->prefix) > 200)
    snprintf(err, errlen, "--mq-redis-stream-prefix must be 1..200 bytes");
  else if (o->max_len < 1)
    snprintf(err, errlen, "--mq-redis-max-len must be >= 1");
  else if (o->claim_idle_us < 100000)
    snprintf(err, errlen, "--mq-redis-claim-idle must be >= 100ms");
  else if (!o->group || !*o->group)
    snprintf(err, errlen, "--audit-consumer-group must not be empty");
  else
    return 0;
  return -EINVAL;
}

static struct timeval tv_of(int64_t us)
{
  if (us <= 0)
    us = 2000000;
  return (struct timeval){(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
}

redisContext *kt_mq_connect(const struct kt_mq_opts *o)
{
  char host[256];
  const char *colon = strrchr(o->address, ':');
  size_t hl = colon ? (size_t)(colon - o->address) : 0;
  if (!colon || hl >= sizeof host)
    return NULL;
  memcpy(host, o->address, hl);
  host[hl] = 0;
  struct timeval tv = tv_of(o->timeout_us);
  redisContext *c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
  if (!c || c->err) {
    kt_debug("mq: cannot connect to Redis %s: %s", o->address,
             c ? c->errstr : "out of memory");
    if (c)
      redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  redisEnableKeepAlive(c);
  return c;
}

redisReply *kt_mq_cmd(redisContext *c, int argc, const char **argv)
{
  return redisCommandArgv(c, argc, argv, NULL);
}

int kt_mq_is_error(const redisReply *r, const char *prefix)
{
  return r && r->type == REDIS_REPLY_ERROR && r->str &&
         !strncmp(r->str, prefix, strlen(prefix));
}
