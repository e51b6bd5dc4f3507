/* kt_consumer: the ingest queue and the workers that turn audit events
 * into spans. Producers (webhook, replay) submit parsed events; each lands
 * in the partition of its object, and one worker per partition hands it
 * to kelemetrix (when enabled), filters it, builds the audit span (§1.4),
 * decorates it with the diff (§1.7.4) and hands it to the aggregator. */
#ifndef KT_CONSUMER_H
#define KT_CONSUMER_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct kt_aggregator;
struct kt_decorator;
struct kt_filter;
struct kt_kelemetrix;
struct kt_consumer;

struct kt_consumer_opts {
  unsigned workers;      /* partitions = workers; 0 = 2 */
  size_t queue_limit;    /* events queued or in flight; 0 = 8000 */
  int ignore_impersonate; /* --audit-consumer-ignore-impersonate-username */
  int skip_existing;     /* drop events whose span is already stored (replay) */
  /* Sees every event (any verb and stage) before the filter; borrowed,
   * must outlive the consumer; NULL = kelemetrix disabled. */
  struct kt_kelemetrix *kelemetrix;
};

/* Tracks the events of one request: done(t) runs (on a worker thread)
 * once every event submitted with it has been processed. Start pending at
 * 1 and call kt_ticket_release once after submitting, so done cannot run
 * before the submission is over. */
struct kt_ticket {
  _Atomic int pending;
  void (*done)(struct kt_ticket *t);
};
void kt_ticket_release(struct kt_ticket *t);

/* Borrowed pointers must outlive the consumer. Starts the workers. */
int kt_consumer_new(const struct kt_consumer_opts *o, struct kt_filter *f,
                    struct kt_decorator *d, struct kt_aggregator *a,
                    struct kt_consumer **out);
/* Drains the queue (every submitted event is processed), stops, frees. */
void kt_consumer_free(struct kt_consumer *c);

/* What a submission did, for the webhook's answer and replay's summary. */
struct kt_submit_result {
  size_t accepted, rejected;
  int first_bad;     /* index of the first rejected item, -1 if none */
  char first_err[256];
  const char *first_reason; /* kt_audit_err_name() of it */
};

/* Validates and queues the events of items (an array of Events; when
 * single, items is one Event). Items are detached from their parent and
 * owned by the queue; invalid items are counted and freed. Room for the
 * whole batch is reserved first: when the queue is full nothing is queued
 * and -EAGAIN is returned (wait = 0), or the call blocks (wait = 1).
 * source_addr is the apiserver's address (the `apiserver` tag). */
int kt_consumer_submit(struct kt_consumer *c, const char *cluster,
                       const char *source_addr, cJSON *items, int single,
                       int wait, struct kt_submit_result *res);
/* As kt_consumer_submit, with a ticket (may be NULL) counting the events
 * queued, and recovered = events replayed from the inbox after a crash
 * (skipped when already stored). */
int kt_consumer_submit_ticket(struct kt_consumer *c, const char *cluster,
                              const char *source_addr, cJSON *items,
                              int single, int wait, struct kt_ticket *ticket,
                              int recovered, struct kt_submit_result *res);

/* Totals since start: traced into spans, dropped by the filter (or for a
 * missing name), failed in the aggregator, skipped as already stored. */
struct kt_consumer_stats {
  uint64_t traced, filtered, failed, duplicate;
};
void kt_consumer_stats(struct kt_consumer *c, struct kt_consumer_stats *out);
/* Blocks until every submitted event has been processed. */
void kt_consumer_wait_idle(struct kt_consumer *c);
size_t kt_consumer_depth(struct kt_consumer *c);
size_t kt_consumer_limit(struct kt_consumer *c);

#endif
