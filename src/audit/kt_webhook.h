/* kt_webhook: the audit webhook, POST /audit and POST /audit/{cluster}
 * (behaviour spec §1.3), with the answers the original does not give:
 *   200 {"accepted":N,"rejected":M[,"errors":[...]]} events queued;
 *   400 malformed JSON, not an Event/EventList, or every item invalid;
 *   413 body over the limit (kt_http); 503 + Retry-After when the queue is
 *   full or, with --mq=redis, Redis is unavailable (the apiserver retries
 *   the batch with backoff).
 * A batch with some bad items: the good ones are queued and the answer is
 * 200 listing the bad ones — a retry could not fix them, and answering 400
 * would make the apiserver drop the good ones with them. */
#ifndef KT_WEBHOOK_H
#define KT_WEBHOOK_H

#include "http/kt_http.h"

struct kt_consumer;
struct kt_inbox;
struct kt_mq_producer;

struct kt_webhook {
  struct kt_consumer *consumer;
  struct kt_inbox *inbox; /* NULL = answer once queued, not once on disk */
  const char *default_cluster;
  void (*on_cluster)(const char *cluster, void *ud); /* optional */
  void *on_cluster_ud;
  /* --mq=redis: events go to the Redis streams instead (consumer and
   * inbox unused); 200 once every event is in a stream, 503 when Redis is
   * unreachable or a partition is full. */
  struct kt_mq_producer *mq;
};

/* The handler to register for "/audit" and "/audit/" (POST). */
int kt_webhook_handle(void *webhook, const struct kt_http_req *req,
                      struct kt_http_resp *resp);

#endif
