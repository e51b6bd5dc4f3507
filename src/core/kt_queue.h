/* kt_queue: a bounded, partitioned, intrusive FIFO between ingest and the
 * consumer workers. One partition per worker; the producer picks the
 * partition by object, so one object's events are processed in order.
 *
 * The bound is global and counts items from reservation until the consumer
 * calls kt_queue_done() — in-flight items included — so the memory held is
 * bounded whatever the partitions' balance. A producer reserves room for a
 * whole batch first (all or nothing), which is what lets the webhook answer
 * 503 without having queued part of a batch. */
#ifndef KT_QUEUE_H
#define KT_QUEUE_H
#include <stddef.h>
#include <stdint.h>

struct kt_queue_item {
  struct kt_queue_item *_next;
};

struct kt_queue;

/* 0 and *out, or -EINVAL / -ENOMEM. */
int kt_queue_new(size_t npart, size_t limit, struct kt_queue **out);
void kt_queue_free(struct kt_queue *q);

/* Reserves room for n items: 0, or -EAGAIN when that would pass the limit,
 * or -ESHUTDOWN once closed. The _wait variant blocks instead of -EAGAIN
 * (replay uses it: a file can wait, an HTTP client should not). */
int kt_queue_reserve(struct kt_queue *q, size_t n);
int kt_queue_reserve_wait(struct kt_queue *q, size_t n);
/* Gives back reserved room that will not be used. */
void kt_queue_unreserve(struct kt_queue *q, size_t n);
/* Appends an item into reserved room. The queue does not own the item. */
void kt_queue_push(struct kt_queue *q, size_t part, struct kt_queue_item *it);
/* Next item of a partition; blocks. NULL once closed and drained. */
struct kt_queue_item *kt_queue_pop(struct kt_queue *q, size_t part);
/* The next (up to) n items kt_queue_pop would return, in that order, left
 * queued: their number; 0 when none (does not block). Only a partition's
 * sole consumer may use them (to prefetch what it will touch), as only it
 * can pop them. */
size_t kt_queue_peek(struct kt_queue *q, size_t part,
                     struct kt_queue_item **out, size_t n);
/* The consumer finished n items: frees their room. */
void kt_queue_done(struct kt_queue *q, size_t n);
/* Blocks until every reserved item is done. */
void kt_queue_wait_idle(struct kt_queue *q);
void kt_queue_close(struct kt_queue *q);

size_t kt_queue_depth(struct kt_queue *q); /* reserved and not done */
size_t kt_queue_limit(struct kt_queue *q);
size_t kt_queue_partitions(struct kt_queue *q);

#endif
