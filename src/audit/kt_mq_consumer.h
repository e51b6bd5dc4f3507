/* kt_mq_consumer: the consumer side of the audit queue on Redis Streams
 * (§1.4 consumer). It reads the partitions this process owns in the
 * consumer group, hands each entry to the in-process kt_consumer with a
 * ticket, and acknowledges an entry (XACK, then XDEL: the stream keeps only
 * unprocessed entries) once its event has been processed and the store has
 * committed the spans: delivery is at least once.
 *
 * Ownership: each partition is read by one process at a time, so one
 * object's events keep their order. A process holds a partition by a lease
 * (SET NX PX, renewed by compare-and-set) and takes free ones up to a fair
 * share of the live consumers; one above its share gives the excess back
 * once its entries there are acknowledged. On taking a partition it first
 * claims what a former owner left pending (idle longer than
 * --mq-redis-claim-idle) and processes those entries, marked redelivered
 * (skipped when their span is already stored), before new ones.
 *
 * Redis unreachable: reading stops, acknowledgements wait, both resume on
 * reconnection (with backoff); nothing acknowledged to the webhook is lost
 * as long as Redis persists its data (appendonly). */
#ifndef KT_MQ_CONSUMER_H
#define KT_MQ_CONSUMER_H

#include "audit/kt_mq.h"

struct kt_consumer;
struct kt_store;
struct kt_mq_consumer;

/* Starts reading. c and st are borrowed and must outlive the consumer;
 * strings in o are copied. name identifies this process in the group
 * (NULL = "<hostname>-<pid>-<random>"). Redis need not be up yet. */
int kt_mq_consumer_start(const struct kt_mq_opts *o, const char *name,
                         struct kt_consumer *c, struct kt_store *st,
                         struct kt_mq_consumer **out);
/* Stops reading, waits for the in-process queue to drain and the entries
 * to be acknowledged (bounded by the command timeout when Redis is down:
 * what is left stays pending and is claimed by another consumer), gives
 * the leases back, frees. Call before freeing c. NULL is a no-op. */
void kt_mq_consumer_stop(struct kt_mq_consumer *m);

/* Partitions owned right now (tests, metrics). */
unsigned kt_mq_consumer_owned(struct kt_mq_consumer *m);

#endif
