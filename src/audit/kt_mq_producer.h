/* kt_mq_producer: the webhook's side of the audit queue on Redis Streams
 * (§1.4 producer). A webhook batch is validated exactly as the embedded
 * path does it, each valid event becomes one stream entry in the partition
 * of its key, and the call returns 0 only once Redis has acknowledged every
 * XADD of the batch (pipelined): the webhook's 200 means "in the stream".
 *
 * Nothing is half-acknowledged to the apiserver: when any XADD fails the
 * answer is 503 and the apiserver resends the whole batch; entries that did
 * get in are then queued twice, and the consumer's idempotent writes
 * (span ids derived from the audit ID and the object's window) store them
 * once. Thread-safe: a small pool of connections serves the HTTP threads. */
#ifndef KT_MQ_PRODUCER_H
#define KT_MQ_PRODUCER_H
#include <stddef.h>

#include <cjson/cJSON.h>

#include "audit/kt_mq.h"

struct kt_submit_result;
struct kt_mq_producer;

/* Strings in o are copied. Does not connect yet (Redis may come later). */
int kt_mq_producer_new(const struct kt_mq_opts *o, struct kt_mq_producer **out);
void kt_mq_producer_free(struct kt_mq_producer *p);

/* Validates and adds the events of items (an array of Events; when single,
 * items is one Event) to their partitions. Items are detached from their
 * parent and freed (also on failure); invalid items are counted in res and
 * not added. Returns 0 once every valid event is in a stream, or:
 *   -EAGAIN     a partition holds --mq-redis-max-len entries (queue_full);
 *   -ENOTCONN   Redis is unreachable (refused without waiting while a
 *               recent connect failed);
 *   -EIO        Redis answered an error (e.g. OOM); part of the batch may
 *               be in the stream.
 * Each refusal is counted in audit_mq_refused_total{reason}. */
int kt_mq_produce(struct kt_mq_producer *p, const char *cluster,
                  const char *source_addr, cJSON *items, int single,
                  struct kt_submit_result *res);

#endif
