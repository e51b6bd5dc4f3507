/* kt_otlp: OTLP/HTTP export of spans to any OpenTelemetry collector
 * (Jaeger, Tempo, the OpenTelemetry Collector), besides the store or
 * instead of it (behaviour spec §1.12; docs/internals/otlp.md).
 *
 * kt_otlp_put() encodes the span at once (protobuf or the OTLP/JSON
 * mapping) into a bounded buffer and never blocks: when the buffer is full
 * (spans or bytes) the span is dropped and counted in
 * otlp_export_dropped_total{reason="buffer_full"}. One sender thread takes
 * batches from the buffer, groups them by span type into one
 * ResourceSpans each (service.name = audit | event | object | link, plus
 * the configured resource attributes), POSTs an ExportTraceServiceRequest
 * and retries connection errors and 429/502/503/504 with exponential
 * backoff and jitter, honouring Retry-After; other answers are not
 * retried. Every span put is, in the end, either exported or counted in
 * otlp_export_dropped_total under one reason. */
#ifndef KT_OTLP_H
#define KT_OTLP_H
#include <stddef.h>
#include <stdint.h>

#include "store/kt_span.h"

struct kt_otlp;
struct kt_metrics;

enum kt_otlp_encoding { KT_OTLP_PROTOBUF, KT_OTLP_JSON };

struct kt_otlp_opts {
  /* http(s)://host:port/path; "host:port" alone means
   * http(s)://host:port/v1/traces (https unless insecure). Required. */
  const char *endpoint;
  int insecure;
  enum kt_otlp_encoding encoding;
  const char *resource_attributes; /* "k=v,..."; NULL = service.version=dev */
  const char *headers;             /* "k=v,..." extra HTTP headers */
  size_t buffer_spans;             /* 0 = 20000 */
  size_t buffer_bytes;             /* 0 = 128 MiB */
  size_t batch_spans;              /* 0 = 512 */
  int64_t batch_delay_us;          /* 0 = 1s: oldest span waits at most this */
  int64_t timeout_us;              /* per request; 0 = 10s */
  int64_t backoff_initial_us;      /* 0 = 500ms */
  int64_t backoff_max_us;          /* 0 = 30s, also caps Retry-After */
  int64_t retry_max_elapsed_us;    /* a batch is given up after; 0 = 5m */
  int64_t flush_timeout_us;        /* kt_otlp_free's budget; 0 = 5s */
  struct kt_metrics *metrics;      /* NULL = the default registry */
};

/* Starts the sender thread. 0 and *out, or -EINVAL (bad endpoint,
 * attribute or header list; the reason is logged) or -ENOMEM. */
int kt_otlp_new(const struct kt_otlp_opts *o, struct kt_otlp **out);
/* Flushes what is buffered, retrying within flush_timeout_us; what is left
 * then is dropped with reason "shutdown". NULL is a no-op. */
void kt_otlp_free(struct kt_otlp *e);

/* Copies what it needs of s (the caller keeps s). 0, or -ENOBUFS when the
 * span was dropped (buffer full), -ESHUTDOWN after free began, -ENOMEM. */
int kt_otlp_put(struct kt_otlp *e, const struct kt_span *s);

struct kt_otlp_stats {
  uint64_t put, exported, dropped, batches, retries;
  size_t buffered;
};
void kt_otlp_stats(struct kt_otlp *e, struct kt_otlp_stats *st);

/* The encodings, exposed for the unit tests. Each returns malloc'd bytes
 * (caller frees) or NULL on ENOMEM.
 * One Span message (protobuf) or span object (JSON) ... */
uint8_t *kt_otlp_encode_span(enum kt_otlp_encoding enc, const struct kt_span *s,
                             size_t *len);
/* ... and a whole ExportTraceServiceRequest for n spans, grouped by
 * service, with the resource attributes "k=v,..." (NULL = the default). */
uint8_t *kt_otlp_encode_request(enum kt_otlp_encoding enc,
                                const struct kt_span *const *spans, size_t n,
                                const char *resource_attributes, size_t *len);
/* Spans the collector rejected according to an ExportTraceServiceResponse
 * body (partial_success.rejected_spans): >= 0, or -EBADMSG. */
int64_t kt_otlp_parse_response(enum kt_otlp_encoding enc, const void *body,
                               size_t len);

#endif
