/* kt_mq: what the producer (kt_mq_producer) and the consumer
 * (kt_mq_consumer) of the audit queue on Redis Streams share: the options,
 * the partition key of §1.4, the key names and the Redis connection.
 *
 * Layout in Redis (prefix = --mq-redis-stream-prefix, P partitions):
 *   <prefix>:<p>          stream of partition p (0..P-1); one entry per
 *                         audit event: e = event JSON, c = cluster,
 *                         s = source address (the `apiserver` tag)
 *   <prefix>:<p>:lease    the consumer id owning partition p (SET PX)
 *   <prefix>:members      zset: consumer id -> expiry (ms, Redis clock)
 *   <prefix>:dead         stream: entries given up after 10 deliveries
 * The stream holds only unprocessed entries: consumers XACK and XDEL once
 * the spans are committed. See docs/internals/mq.md. */
#ifndef KT_MQ_H
#define KT_MQ_H
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct kt_audit_event;

/* --audit-producer-partition-key-type (§1.4). */
enum kt_mq_key { KT_MQ_KEY_OBJECT, KT_MQ_KEY_CLUSTER, KT_MQ_KEY_AUDIT_ID };

struct kt_mq_opts {
  const char *address;   /* "host:port" of Redis */
  const char *prefix;    /* stream key prefix */
  unsigned partitions;   /* streams; 1..1024 */
  size_t max_len;        /* entries in a partition before the producer refuses */
  int64_t claim_idle_us; /* lease lifetime, and the idle time after which a
                          * former owner's pending entries are claimed */
  const char *group;     /* consumer group */
  enum kt_mq_key key;    /* producer: what picks the partition */
  int64_t timeout_us;    /* connect and command timeout; 0 = 2 s */
};

/* 0, or -EINVAL for an unknown name (object, cluster, audit-id). */
int kt_mq_key_parse(const char *name, enum kt_mq_key *out);
/* The §1.4 key of an event: "<cluster>/" (cluster), "<cluster>/" + the
 * object key (object; the same identity the consumer partitions by) or
 * "<cluster>/<auditID>" (audit-id). */
void kt_mq_key_of(enum kt_mq_key k, const struct kt_audit_event *ev,
                  char *buf, size_t len);
/* FNV-1a of key modulo n. */
unsigned kt_mq_partition(const char *key, unsigned n);
/* "<prefix>:<p>" and "<prefix>:<p>:lease". */
void kt_mq_stream_key(const struct kt_mq_opts *o, unsigned p, char *buf,
                      size_t len);
void kt_mq_lease_key(const struct kt_mq_opts *o, unsigned p, char *buf,
                     size_t len);
/* 0, or -EINVAL with a reason in err for unusable options. */
int kt_mq_opts_check(const struct kt_mq_opts *o, char *err, size_t errlen);

/* A connection with connect and command timeouts, or NULL (the reason is
 * logged at debug level; callers log state changes themselves). */
redisContext *kt_mq_connect(const struct kt_mq_opts *o);
/* Runs a command given as an argv of NUL-terminated strings. The reply is
 * the caller's (freeReplyObject); NULL when the connection broke, which
 * then must be freed and replaced. */
redisReply *kt_mq_cmd(redisContext *c, int argc, const char **argv);
/* 1 when r is an error reply starting with prefix (e.g. "NOGROUP"). */
int kt_mq_is_error(const redisReply *r, const char *prefix);

#endif
