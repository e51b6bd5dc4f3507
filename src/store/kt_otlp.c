/* kt_otlp: see the header and docs/internals/otlp.md. */
#include "store/kt_otlp.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_pb.h"
#include "core/kt_time.h"

#define SCOPE_NAME "kelemetry"
#define MAX_RESPONSE (64 * 1024)
#define SVC_MAX 64

/* ---- encoding: one span ------------------------------------------------ */

/* OTLP field numbers (opentelemetry-proto trace/v1, common/v1,
 * resource/v1, collector/trace/v1). */
enum {
  REQ_RESOURCE_SPANS = 1,
  RS_RESOURCE = 1, RS_SCOPE_SPANS = 2,
  RES_ATTRIBUTES = 1,
  SS_SCOPE = 1, SS_SPANS = 2,
  SCOPE_NAME_F = 1, SCOPE_VERSION_F = 2,
  SPAN_TRACE_ID = 1, SPAN_SPAN_ID = 2, SPAN_PARENT_ID = 4, SPAN_NAME = 5,
  SPAN_KIND = 6, SPAN_START = 7, SPAN_END = 8, SPAN_ATTRIBUTES = 9,
  SPAN_EVENTS = 11,
  EVENT_TIME = 1, EVENT_NAME = 2, EVENT_ATTRIBUTES = 3,
  KV_KEY = 1, KV_VALUE = 2,
  ANY_STRING = 1,
  RESP_PARTIAL = 1, PARTIAL_REJECTED = 1,
};
#define SPAN_KIND_INTERNAL 1

static uint64_t nanos(int64_t us)
{
  return us > 0 ? (uint64_t)us * 1000u : 0;
}

/* OTLP expects end >= start; a clock step between the two must not get
 * the span refused. */
static int64_t end_us(const struct kt_span *s)
{
  return s->end_us > s->start_us ? s->end_us : s->start_us;
}

static void pb_attr(struct kt_pb *pb, uint32_t field, const char *k,
                    const char *v)
{
  size_t kv = kt_pb_begin(pb, field);
  kt_pb_string_field(pb, KV_KEY, k);
  size_t any = kt_pb_begin(pb, KV_VALUE);
  kt_pb_string_field(pb, ANY_STRING, v);
  kt_pb_end(pb, any);
  kt_pb_end(pb, kv);
}

/* Attribute keys must be unique (OTLP): a later tag with the same key
 * wins, as it would with the SDK's SetAttributes. */
static int tag_shadowed(const struct kt_span *s, size_t i)
{
  for (size_t j = i + 1; j < s->ntags; j++)
    if (strcmp(s->tags[i].key, s->tags[j].key) == 0)
      return 1;
  return 0;
}

static void span_id_bytes(uint64_t id, uint8_t out[8])
{
  for (int i = 0; i < 8; i++) /* big-endian: the hex form reads the same */
    out[i] = (uint8_t)(id >> (56 - 8 * i));
}

static uint8_t *encode_span_pb(const struct kt_span *s, size_t *len)
{
  struct kt_pb pb = {0};
  uint8_t id[8];
  kt_pb_bytes_field(&pb, SPAN_TRACE_ID, s->trace_id, 16);
  span_id_bytes(s->span_id, id);
  kt_pb_bytes_field(&pb, SPAN_SPAN_ID, id, 8);
  if (s->parent_id) {
    span_id_bytes(s->parent_id, id);
    kt_pb_bytes_field(&pb, SPAN_PARENT_ID, id, 8);
  }
  kt_pb_string_field(&pb, SPAN_NAME, s->operation);
  kt_pb_varint_field(&pb, SPAN_KIND, SPAN_KIND_INTERNAL);
  kt_pb_fixed64_field(&pb, SPAN_START, nanos(s->start_us));
  kt_pb_fixed64_field(&pb, SPAN_END, nanos(end_us(s)));
  for (size_t i = 0; i < s->ntags; i++)
    if (!tag_shadowed(s, i))
      pb_attr(&pb, SPAN_ATTRIBUTES, s->tags[i].key, s->tags[i].value);
  for (size_t i = 0; i < s->nlogs; i++) {
    const struct kt_log *l = &s->logs[i];
    if (!l->msg) /* a display-only log of the frontend */
      continue;
    size_t ev = kt_pb_begin(&pb, SPAN_EVENTS);
    /* §1.12: the original stamps every event with the span's start. */
    kt_pb_fixed64_field(&pb, EVENT_TIME, nanos(s->start_us));
    kt_pb_string_field(&pb, EVENT_NAME, l->msg);
    pb_attr(&pb, EVENT_ATTRIBUTES, "zzz-logType", l->type ? l->type : "");
    kt_pb_end(&pb, ev);
  }
  if (kt_pb_error(&pb)) {
    kt_pb_free(&pb);
    return NULL;
  }
  return kt_pb_take(&pb, len);
}

static cJSON *json_attr(const char *k, const char *v)
{
  cJSON *kv = cJSON_CreateObject(), *any = cJSON_CreateObject();
  cJSON_AddStringToObject(kv, "key", k);
  cJSON_AddStringToObject(any, "stringValue", v);
  cJSON_AddItemToObject(kv, "value", any);
  return kv;
}

static void json_nanos(cJSON *o, const char *k, int64_t us)
{
  char b[32]; /* OTLP/JSON: 64-bit integers are decimal strings */
  snprintf(b, sizeof b, "%llu", (unsigned long long)nanos(us));
  cJSON_AddStringToObject(o, k, b);
}

static cJSON *span_json(const struct kt_span *s)
{
  char hex[33];
  cJSON *o = cJSON_CreateObject(), *attrs, *events;
  kt_trace_id_hex(s->trace_id, hex);
  cJSON_AddStringToObject(o, "traceId", hex);
  kt_span_id_hex(s->span_id, hex);
  cJSON_AddStringToObject(o, "spanId", hex);
  if (s->parent_id) {
    kt_span_id_hex(s->parent_id, hex);
    cJSON_AddStringToObject(o, "parentSpanId", hex);
  }
  cJSON_AddStringToObject(o, "name", s->operation);
  cJSON_AddNumberToObject(o, "kind", SPAN_KIND_INTERNAL);
  json_nanos(o, "startTimeUnixNano", s->start_us);
  json_nanos(o, "endTimeUnixNano", end_us(s));
  attrs = cJSON_AddArrayToObject(o, "attributes");
  for (size_t i = 0; i < s->ntags; i++)
    if (!tag_shadowed(s, i))
      cJSON_AddItemToArray(attrs, json_attr(s->tags[i].key, s->tags[i].value));
  events = cJSON_AddArrayToObject(o, "events");
  for (size_t i = 0; i < s->nlogs; i++) {
    const struct kt_log *l = &s->logs[i];
    if (!l->msg)
      continue;
    cJSON *ev = cJSON_CreateObject();
    json_nanos(ev, "timeUnixNano", s->start_us);
    cJSON_AddStringToObject(ev, "name", l->msg);
    cJSON *ea = cJSON_AddArrayToObject(ev, "attributes");
    cJSON_AddItemToArray(ea, json_attr("zzz-logType", l->type ? l->type : ""));
    cJSON_AddItemToArray(events, ev);
  }
  return o;
}

static uint8_t *json_bytes(cJSON *o, size_t *len)
{
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  *len = t ? strlen(t) : 0;
  return (uint8_t *)t;
}

uint8_t *kt_otlp_encode_span(enum kt_otlp_encoding enc, const struct kt_span *s,
                             size_t *len)
{
  if (enc == KT_OTLP_JSON)
    return json_bytes(span_json(s), len);
  return encode_span_pb(s, len);
}

/* ---- encoding: resources and the request -------------------------------- */

struct kv {
  char *k, *v;
};

struct kvlist {
  struct kv *v;
  size_t n;
};

static void kvlist_free(struct kvlist *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].k);
    free(l->v[i].v);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* "k=v,k2=v2" (the value may hold '='; blanks around items ignored).
 * 0, -EINVAL (an item without "=k" or an empty key) or -ENOMEM. */
static int kvlist_parse(const char *s, struct kvlist *out)
{
  char *copy = strdup(s ? s : ""), *save = NULL;
  int rc = copy ? 0 : -ENOMEM;
  memset(out, 0, sizeof *out);
  for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && !rc;
       t = strtok_r(NULL, ",", &save)) {
    while (isspace((unsigned char)*t))
      t++;
    if (!*t)
      continue;
    char *eq = strchr(t, '=');
    if (!eq || eq == t) {
      rc = -EINVAL;
      break;
    }
    *eq = 0;
    struct kv *v = realloc(out->v, (out->n + 1) * sizeof *v);
    if (!v) {
      rc = -ENOMEM;
      break;
    }
    out->v = v;
    v[out->n].k = strdup(t);
    v[out->n].v = strdup(eq + 1);
    out->n++;
    if (!v[out->n - 1].k || !v[out->n - 1].v)
      rc = -ENOMEM;
  }
  free(copy);
  if (rc)
    kvlist_free(out);
  return rc;
}

/* The Resource of one span type: service.name first, then the configured
 * attributes (a configured service.name would contradict it: skipped). */
static void resource_pb(struct kt_pb *pb, const char *svc,
                        const struct kvlist *attrs)
{
  size_t m = kt_pb_begin(pb, RS_RESOURCE);
  pb_attr(pb, RES_ATTRIBUTES, "service.name", svc);
  for (size_t i = 0; i < attrs->n; i++)
    if (strcmp(attrs->v[i].k, "service.name") != 0)
      pb_attr(pb, RES_ATTRIBUTES, attrs->v[i].k, attrs->v[i].v);
  kt_pb_end(pb, m);
}

static void scope_pb(struct kt_pb *pb)
{
  size_t m = kt_pb_begin(pb, SS_SCOPE);
  kt_pb_string_field(pb, SCOPE_NAME_F, SCOPE_NAME);
  kt_pb_string_field(pb, SCOPE_VERSION_F, KT_VERSION);
  kt_pb_end(pb, m);
}

static void resource_json(struct kt_pb *out, const char *svc,
                          const struct kvlist *attrs)
{
  cJSON *r = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(r, "attributes");
  cJSON_AddItemToArray(a, json_attr("service.name", svc));
  for (size_t i = 0; i < attrs->n; i++)
    if (strcmp(attrs->v[i].k, "service.name") != 0)
      cJSON_AddItemToArray(a, json_attr(attrs->v[i].k, attrs->v[i].v));
  size_t len;
  uint8_t *t = json_bytes(r, &len);
  if (!t)
    out->err = -ENOMEM;
  kt_pb_raw(out, t, len);
  free(t);
}

/* One encoded span on its way to a request. */
struct piece {
  const char *svc;
  const uint8_t *data;
  size_t len;
};

static void group_pb(struct kt_pb *pb, const struct piece *p, size_t n,
                     const char *svc, const struct kvlist *attrs)
{
  size_t rs = kt_pb_begin(pb, REQ_RESOURCE_SPANS);
  resource_pb(pb, svc, attrs);
  size_t ss = kt_pb_begin(pb, RS_SCOPE_SPANS);
  scope_pb(pb);
  for (size_t i = 0; i < n; i++)
    if (strcmp(p[i].svc, svc) == 0)
      kt_pb_bytes_field(pb, SS_SPANS, p[i].data, p[i].len);
  kt_pb_end(pb, ss);
  kt_pb_end(pb, rs);
}

static void group_json(struct kt_pb *pb, const struct piece *p, size_t n,
                       const char *svc, const struct kvlist *attrs)
{
  static const char scope[] =
      "\"scopeSpans\":[{\"scope\":{\"name\":\"" SCOPE_NAME
      "\",\"version\":\"" KT_VERSION "\"},\"spans\":[";
  int first = 1;
  kt_pb_raw(pb, "{\"resource\":", 12);
  resource_json(pb, svc, attrs);
  kt_pb_raw(pb, ",", 1);
  kt_pb_raw(pb, scope, sizeof scope - 1);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(p[i].svc, svc) != 0)
      continue;
    if (!first)
      kt_pb_raw(pb, ",", 1);
    kt_pb_raw(pb, p[i].data, p[i].len);
    first = 0;
  }
  kt_pb_raw(pb, "]}]}", 4);
}

/* One ResourceSpans per distinct service, in order of first appearance. */
static uint8_t *encode_pieces(enum kt_otlp_encoding enc, const struct piece *p,
                              size_t n, const struct kvlist *attrs,
                              size_t *len)
{
  struct kt_pb pb = {0};
  int groups = 0;
  if (enc == KT_OTLP_JSON)
    kt_pb_raw(&pb, "{\"resourceSpans\":[", 18);
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < i && strcmp(p[j].svc, p[i].svc) != 0)
      j++;
    if (j < i)
      continue; /* that service is grouped already */
    if (enc == KT_OTLP_JSON) {
      if (groups)
        kt_pb_raw(&pb, ",", 1);
      group_json(&pb, p, n, p[i].svc, attrs);
    } else {
      group_pb(&pb, p, n, p[i].svc, attrs);
    }
    groups++;
  }
  if (enc == KT_OTLP_JSON)
    kt_pb_raw(&pb, "]}", 2);
  if (kt_pb_error(&pb)) {
    kt_pb_free(&pb);
    return NULL;
  }
  uint8_t *out = kt_pb_take(&pb, len);
  return out ? out : calloc(1, 1); /* an empty request is valid */
}

#define DEFAULT_RESOURCE_ATTRIBUTES "service.version=dev"

uint8_t *kt_otlp_encode_request(enum kt_otlp_encoding enc,
                                const struct kt_span *const *spans, size_t n,
                                const char *resource_attributes, size_t *len)
{
  struct kvlist attrs;
  struct piece *p = calloc(n ? n : 1, sizeof *p);
  uint8_t *out = NULL;
  if (!p || kvlist_parse(resource_attributes ? resource_attributes
                                              : DEFAULT_RESOURCE_ATTRIBUTES,
                         &attrs)) {
    free(p);
    return NULL;
  }
  size_t i;
  for (i = 0; i < n; i++) {
    p[i].svc = spans[i]->service ? spans[i]->service : "";
    if (!(p[i].data = kt_otlp_encode_span(enc, spans[i], &p[i].len)))
      break;
  }
  if (i == n)
    out = encode_pieces(enc, p, n, &attrs, len);
  while (i--)
    free((void *)p[i].data);
  free(p);
  kvlist_free(&attrs);
  return out;
}

/* ---- the response --------------------------------------------------------- */

static int64_t partial_pb(const uint8_t *b, size_t len)
{
  struct kt_pb_reader r = {b, b + len}, in;
  struct kt_pb_field f;
  int64_t rejected = 0;
  int rc;
  while ((rc = kt_pb_next(&r, &f)) > 0) {
    if (f.num != RESP_PARTIAL || f.wire != KT_PB_LEN)
      continue; /* unknown fields are skipped, as protobuf says */
    in = (struct kt_pb_reader){f.data, f.data + f.len};
    while ((rc = kt_pb_next(&in, &f)) > 0)
      if (f.num == PARTIAL_REJECTED && f.wire == KT_PB_VARINT)
        rejected = (int64_t)f.v;
    if (rc < 0)
      return rc;
  }
  if (rc < 0)
    return rc;
  return rejected < 0 ? -EBADMSG : rejected;
}

static int64_t partial_json(const void *body, size_t len)
{
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return -EBADMSG;
  }
  const cJSON *ps = cJSON_GetObjectItemCaseSensitive(root, "partialSuccess");
  const cJSON *rj = ps ? cJSON_GetObjectItemCaseSensitive(ps, "rejectedSpans")
                       : NULL;
  int64_t n = 0;
  if (cJSON_IsNumber(rj))
    n = (int64_t)rj->valuedouble;
  else if (cJSON_IsString(rj)) /* int64 as a decimal string */
    n = strtoll(rj->valuestring, NULL, 10);
  cJSON_Delete(root);
  return n < 0 ? -EBADMSG : n;
}

int64_t kt_otlp_parse_response(enum kt_otlp_encoding enc, const void *body,
                               size_t len)
{
  if (len == 0)
    return 0; /* the empty message: everything accepted */
  return enc == KT_OTLP_JSON ? partial_json(body, len) : partial_pb(body, len);
}

/* ---- the exporter ---------------------------------------------------------- */

struct item {
  struct item *next;
  int64_t enq_us; /* monotonic */
  size_t len;
  char svc[SVC_MAX];
  uint8_t *data; /* the encoded Span (protobuf) or span object (JSON) */
};

struct resp {
  char body[MAX_RESPONSE];
  size_t len;
  int64_t retry_after_us; /* -1 = none */
};

struct kt_otlp {
  struct kt_otlp_opts o;
  char *url;
  struct kvlist attrs;
  struct curl_slist *headers;
  CURL *curl;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* the sender waits for work; put and close wake it */
  struct item *head, *tail;
  size_t count, bytes;
  int closing;
  int64_t close_deadline;
  struct kt_otlp_stats st; /* put = exported + dropped + buffered + in flight */
  struct kt_metric *m_drop, *m_fail;
  struct resp resp; /* the sender thread's last answer */
  struct kt_series *s_spans, *s_batches, *s_retries, *s_depth, *s_bytes,
      *s_limit;
  struct kt_metric *m_seconds;
};

static void drop(struct kt_otlp *e, const char *reason, size_t n)
{
  kt_series_add(kt_metric_series(e->m_drop, (const char *const[]){reason}),
                (double)n);
}

static void register_metrics(struct kt_otlp *e)
{
  struct kt_metrics *r = e->o.metrics ? e->o.metrics : kt_metrics_default();
  static const char *const reasons[] = {"buffer_full", "rejected",
      "partial_success", "retries_exhausted", "shutdown", "encode"};
  e->m_drop = kt_metrics_counter(r, "otlp_export_dropped_total",
      "Spans not exported, by reason", (const char *const[]){"reason", NULL});
  for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
    kt_metric_series(e->m_drop, (const char *const[]){reasons[i]});
  e->m_fail = kt_metrics_counter(r, "otlp_export_failures_total",
      "Failed export requests: connection, timeout or http_<status>",
      (const char *const[]){"reason", NULL});
  e->s_spans = kt_metric_series(kt_metrics_counter(r, "otlp_export_spans_total",
      "Spans the collector accepted", NULL), NULL);
  e->s_batches = kt_metric_series(kt_metrics_counter(r,
      "otlp_export_batches_total", "Export requests the collector accepted",
      NULL), NULL);
  e->s_retries = kt_metric_series(kt_metrics_counter(r,
      "otlp_export_retries_total", "Export requests sent again after a "
      "retryable failure", NULL), NULL);
  e->s_depth = kt_metric_series(kt_metrics_gauge(r, "otlp_export_buffer_spans",
      "Spans waiting to be exported", NULL), NULL);
  e->s_bytes = kt_metric_series(kt_metrics_gauge(r, "otlp_export_buffer_bytes",
      "Encoded bytes waiting to be exported", NULL), NULL);
  e->s_limit = kt_metric_series(kt_metrics_gauge(r, "otlp_export_buffer_limit",
      "Spans the buffer holds before dropping", NULL), NULL);
  e->m_seconds = kt_metrics_histogram(r, "otlp_export_request_seconds",
      "Duration of export requests", NULL, NULL, 0);
  kt_series_set(e->s_limit, (double)e->o.buffer_spans);
}

static void gauges(struct kt_otlp *e) /* under mu */
{
  kt_series_set(e->s_depth, (double)e->count);
  kt_series_set(e->s_bytes, (double)e->bytes);
}

/* Spans leave the exporter's books. Under mu. */
static void account(struct kt_otlp *e, size_t exported, size_t dropped)
{
  e->st.exported += exported;
  e->st.dropped += dropped;
}

static void item_free(struct item *it)
{
  free(it->data);
  free(it);
}

/* Encoding happens here, in the caller's thread, outside the lock: the
 * sender only concatenates. */
int kt_otlp_put(struct kt_otlp *e, const struct kt_span *s)
{
  struct item *it = calloc(1, sizeof *it);
  if (it)
    it->data = kt_otlp_encode_span(e->o.encoding, s, &it->len);
  if (it && it->data) {
    it->enq_us = kt_mono_us();
    snprintf(it->svc, sizeof it->svc, "%s", s->service ? s->service : "");
  }
  pthread_mutex_lock(&e->mu);
  const char *reason = NULL;
  int rc = 0;
  if (e->closing)
    rc = -ESHUTDOWN; /* never accepted: not counted as put */
  else if (!it || !it->data)
    rc = -ENOMEM, reason = "encode";
  else if (e->count >= e->o.buffer_spans ||
           e->bytes + it->len > e->o.buffer_bytes)
    rc = -ENOBUFS, reason = "buffer_full";
  if (rc) {
    if (reason) {
      e->st.put++;
      account(e, 0, 1);
    }
    pthread_mutex_unlock(&e->mu);
    if (reason)
      drop(e, reason, 1);
    if (it)
      item_free(it);
    return rc;
  }
  e->st.put++;
  if (e->tail)
    e->tail->next = it;
  else
    e->head = it;
  e->tail = it;
  e->count++;
  e->bytes += it->len;
  gauges(e);
  if (e->count == 1 || e->count >= e->o.batch_spans)
    pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  return 0;
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
  struct resp *r = ud;
  size_t len = sz * n, room = sizeof r->body - r->len;
  memcpy(r->body + r->len, p, len < room ? len : room);
  r->len += len < room ? len : room;
  return len; /* a longer body is cut, not an error */
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
  struct resp *r = ud;
  size_t len = sz * n;
  static const char name[] = "retry-after:";
  if (len > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
    char v[32];
    size_t vl = len - (sizeof name - 1);
    snprintf(v, sizeof v, "%.*s", (int)(vl < sizeof v ? vl : sizeof v - 1),
             p + sizeof name - 1);
    char *end;
    long secs = strtol(v, &end, 10);
    /* Only delay-seconds; an HTTP-date falls back to our own backoff. */
    if (end != v && secs >= 0)
      r->retry_after_us = (int64_t)secs * 1000000;
  }
  return len;
}

/* One POST. Returns the HTTP status, or a negative CURLcode. */
static long post(struct kt_otlp *e, const uint8_t *body, size_t len,
                 struct resp *r)
{
  CURL *c = e->curl;
  long status = 0;
  r->len = 0;
  r->retry_after_us = -1;
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  int64_t t0 = kt_mono_us();
  CURLcode cc = curl_easy_perform(c);
  kt_series_observe(kt_metric_series(e->m_seconds, NULL),
                    (double)(kt_mono_us() - t0) / 1e6);
  if (cc != CURLE_OK)
    return -(long)cc;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

static int retryable(long status)
{
  return status < 0 || status == 429 || status == 502 || status == 503 ||
         status == 504;
}

static void count_failure(struct kt_otlp *e, long status, const char *detail)
{
  char reason[32];
  if (status == -(long)CURLE_OPERATION_TIMEDOUT)
    snprintf(reason, sizeof reason, "timeout");
  else if (status < 0)
    snprintf(reason, sizeof reason, "connection");
  else
    snprintf(reason, sizeof reason, "http_%ld", status);
  kt_metric_inc(e->m_fail, (const char *const[]){reason});
  kt_warn("otlp: export to %s failed: %s%s%s", e->url,
          status < 0 ? curl_easy_strerror((CURLcode)-status) : reason,
          detail && *detail ? ": " : "", detail ? detail : "");
}

/* Waits until wake_us (monotonic), cut short at the close deadline. Under
 * mu. Returns 1 when the close deadline has passed. */
static int sleep_until(struct kt_otlp *e, int64_t wake_us)
{
  for (;;) {
    int64_t now = kt_mono_us(), until = wake_us;
    if (e->closing && now >= e->close_deadline)
      return 1;
    if (e->closing && e->close_deadline < until)
      until = e->close_deadline;
    if (now >= until)
      return 0;
    struct timespec ts = {until / 1000000, (until % 1000000) * 1000};
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
  }
}

static int64_t backoff(const struct kt_otlp *e, int attempt, int64_t ra_us)
{
  if (ra_us >= 0)
    return ra_us < e->o.backoff_max_us ? ra_us : e->o.backoff_max_us;
  int64_t b = e->o.backoff_initial_us;
  for (int i = 0; i < attempt && b < e->o.backoff_max_us; i++)
    b *= 2;
  if (b > e->o.backoff_max_us)
    b = e->o.backoff_max_us;
  /* Jitter in [b/2, b): many instances do not retry in step. */
  return b / 2 + (int64_t)(kt_random_u64() % (uint64_t)(b / 2 + 1));
}

/* Sends one request until it is accepted, refused for good or given up.
 * Returns the number of spans exported; *dropped gets the rest and
 * *reason why. Called without mu. */
static size_t send_body(struct kt_otlp *e, const uint8_t *body, size_t len,
                        size_t n, const char **reason)
{
  struct resp *r = &e->resp;
  int64_t t0 = kt_mono_us();
  for (int attempt = 0;; attempt++) {
    long status = post(e, body, len, r);
    if (status >= 200 && status < 300) {
      int64_t rej = kt_otlp_parse_response(e->o.encoding, r->body, r->len);
      if (rej < 0) {
        kt_warn("otlp: unreadable response from %s; counted as accepted",
                e->url);
        rej = 0;
      }
      if ((uint64_t)rej > n)
        rej = (int64_t)n;
      if (rej) {
        kt_warn("otlp: the collector rejected %lld of %zu spans: %.*s",
                (long long)rej, n, (int)(r->len < 200 ? r->len : 200), r->body);
        *reason = "partial_success";
      }
      kt_series_add(e->s_batches, 1);
      return n - (size_t)rej;
    }
    char detail[160] = "";
    if (status > 0)
      snprintf(detail, sizeof detail, "%.*s",
               (int)(r->len < 150 ? r->len : 150), r->body);
    for (char *p = detail; *p; p++)
      if (!isprint((unsigned char)*p))
        *p = ' ';
    count_failure(e, status, detail);
    if (!retryable(status)) {
      *reason = "rejected";
      return 0;
    }
    pthread_mutex_lock(&e->mu);
    int late = kt_mono_us() - t0 >= e->o.retry_max_elapsed_us;
    int over = late ? 0 : sleep_until(e, kt_mono_us() +
                                             backoff(e, attempt, r->retry_after_us));
    pthread_mutex_unlock(&e->mu);
    if (late || over) {
      *reason = late ? "retries_exhausted" : "shutdown";
      return 0;
    }
    kt_series_add(e->s_retries, 1);
    pthread_mutex_lock(&e->mu);
    e->st.retries++;
    pthread_mutex_unlock(&e->mu);
  }
}

static void send_batch(struct kt_otlp *e, struct item *list, size_t n)
{
  struct piece *p = calloc(n, sizeof *p);
  size_t i = 0, len = 0, exported = 0;
  const char *reason = "encode";
  for (struct item *it = list; p && it; it = it->next, i++)
    p[i] = (struct piece){it->svc, it->data, it->len};
  uint8_t *body = p ? encode_pieces(e->o.encoding, p, n, &e->attrs, &len)
                    : NULL;
  if (body)
    exported = send_body(e, body, len, n, &reason);
  free(body);
  free(p);
  while (list) {
    struct item *next = list->next;
    item_free(list);
    list = next;
  }
  if (exported < n)
    drop(e, reason, n - exported);
  kt_series_add(e->s_spans, (double)exported);
  pthread_mutex_lock(&e->mu);
  e->st.batches += exported ? 1 : 0;
  account(e, exported, n - exported);
  pthread_mutex_unlock(&e->mu);
}

/* Under mu: whether a batch should go now. */
static int batch_ready(struct kt_otlp *e, int64_t *wake)
{
  if (!e->count)
    return 0;
  if (e->closing || e->count >= e->o.batch_spans)
    return 1;
  *wake = e->head->enq_us + e->o.batch_delay_us;
  return kt_mono_us() >= *wake;
}

static struct item *take(struct kt_otlp *e, size_t *n) /* under mu */
{
  struct item *list = e->head, *last = NULL;
  size_t k = 0;
  for (struct item *it = e->head; it && k < e->o.batch_spans; it = it->next) {
    last = it;
    k++;
    e->bytes -= it->len;
  }
  e->head = last->next;
  last->next = NULL;
  if (!e->head)
    e->tail = NULL;
  e->count -= k;
  gauges(e);
  *n = k;
  return list;
}

/* What is still buffered when the close deadline passes. Under mu. */
static void drop_buffered(struct kt_otlp *e)
{
  size_t n = e->count;
  while (e->head) {
    struct item *next = e->head->next;
    item_free(e->head);
    e->head = next;
  }
  e->tail = NULL;
  e->count = e->bytes = 0;
  gauges(e);
  if (n) {
    kt_warn("otlp: shutdown: %zu spans not exported in time", n);
    drop(e, "shutdown", n);
    account(e, 0, n);
  }
}

static void *sender_main(void *ud)
{
  struct kt_otlp *e = ud;
  pthread_mutex_lock(&e->mu);
  for (;;) {
    int64_t wake = 0;
    if (e->closing && kt_mono_us() >= e->close_deadline) {
      drop_buffered(e);
      break;
    }
    if (!batch_ready(e, &wake)) {
      if (e->closing && !e->count)
        break;
      if (e->count) {
        struct timespec ts = {wake / 1000000, (wake % 1000000) * 1000};
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
      } else {
        pthread_cond_wait(&e->cv, &e->mu);
      }
      continue;
    }
    size_t n;
    struct item *list = take(e, &n);
    pthread_mutex_unlock(&e->mu);
    send_batch(e, list, n);
    pthread_mutex_lock(&e->mu);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

/* ---- setup ---------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* "host:port" -> "http(s)://host:port/v1/traces"; a URL without a path
 * gets /v1/traces (the OTLP/HTTP default path). */
static char *endpoint_url(const char *ep, int insecure)
{
  char buf[2048];
  const char *rest = strstr(ep, "://");
  if (!*ep || strchr(ep, ' ') || strlen(ep) > 1900)
    return NULL;
  if (rest && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
    return NULL;
  snprintf(buf, sizeof buf, "%s%s", rest ? "" : insecure ? "http://" : "https://",
           ep);
  rest = strstr(buf, "://") + 3;
  if (!*rest || *rest == '/')
    return NULL;
  if (!strchr(rest, '/'))
    strcat(buf, "/v1/traces");
  return strdup(buf);
}

static int build_headers(struct kt_otlp *e, const char *spec)
{
  struct kvlist h;
  int rc = kvlist_parse(spec, &h);
  if (rc)
    return rc;
  e->headers = curl_slist_append(NULL, e->o.encoding == KT_OTLP_JSON
                                           ? "Content-Type: application/json"
                                           : "Content-Type: application/x-protobuf");
  e->headers = curl_slist_append(e->headers, "Expect:");
  for (size_t i = 0; i < h.n && !rc; i++) {
    if (strpbrk(h.v[i].k, ":\r\n \t") || strpbrk(h.v[i].v, "\r\n")) {
      rc = -EINVAL;
      break;
    }
    size_t n = strlen(h.v[i].k) + strlen(h.v[i].v) + 3;
    char *line = malloc(n);
    if (line)
      snprintf(line, n, "%s: %s", h.v[i].k, h.v[i].v);
    struct curl_slist *l = line ? curl_slist_append(e->headers, line) : NULL;
    free(line);
    if (!l)
      rc = -ENOMEM;
    else
      e->headers = l;
  }
  kvlist_free(&h);
  return rc;
}

static int setup_curl(struct kt_otlp *e)
{
  pthread_once(&curl_once, curl_init);
  CURL *c = e->curl = curl_easy_init();
  if (!c)
    return -ENOMEM;
  curl_easy_setopt(c, CURLOPT_URL, e->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(e->o.timeout_us / 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)(e->o.timeout_us / 1000));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  return 0;
}

static void defaults(struct kt_otlp_opts *o)
{
#define DEF(f, v) \
  if (!o->f)      \
  o->f = v
  DEF(buffer_spans, 20000);
  DEF(buffer_bytes, (size_t)128 << 20);
  DEF(batch_spans, 512);
  DEF(batch_delay_us, 1000000);
  DEF(timeout_us, 10000000);
  DEF(backoff_initial_us, 500000);
  DEF(backoff_max_us, 30000000);
  DEF(retry_max_elapsed_us, 300000000);
  DEF(flush_timeout_us, 5000000);
  DEF(resource_attributes, DEFAULT_RESOURCE_ATTRIBUTES);
#undef DEF
  if (o->backoff_initial_us < 2)
    o->backoff_initial_us = 2;
}

static void destroy(struct kt_otlp *e)
{
  if (e->curl)
    curl_easy_cleanup(e->curl);
  curl_slist_free_all(e->headers);
  kvlist_free(&e->attrs);
  free(e->url);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  free(e);
}

static int init_sync(struct kt_otlp *e)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, &ca);
  pthread_condattr_destroy(&ca);
  return 0;
}

int kt_otlp_new(const struct kt_otlp_opts *o, struct kt_otlp **out)
{
  struct kt_otlp *e = calloc(1, sizeof *e);
  if (!e)
    return -ENOMEM;
  e->o = *o;
  defaults(&e->o);
  e->o.endpoint = e->o.resource_attributes = e->o.headers = NULL; /* borrowed */
  init_sync(e);
  int rc = 0;
  if (!(e->url = endpoint_url(o->endpoint ? o->endpoint : "", o->insecure))) {
    kt_error("--tracer-otel-endpoint %s: not host:port or an http(s) URL",
             o->endpoint ? o->endpoint : "");
    rc = -EINVAL;
  } else if ((rc = kvlist_parse(o->resource_attributes
                                    ? o->resource_attributes
                                    : DEFAULT_RESOURCE_ATTRIBUTES,
                                &e->attrs))) {
    kt_error("--tracer-otel-resource-attributes: expected k=v,...");
  } else if ((rc = build_headers(e, o->headers))) {
    kt_error("--tracer-otel-headers: expected k=v,... (no ':' or line "
             "breaks in names, none in values)");
  }
  rc = rc ? rc : setup_curl(e);
  if (!rc) {
    register_metrics(e);
    rc = -pthread_create(&e->thread, NULL, sender_main, e);
  }
  if (rc) {
    destroy(e);
    return rc;
  }
  kt_info("otlp: exporting spans to %s (%s)", e->url,
          e->o.encoding == KT_OTLP_JSON ? "json" : "protobuf");
  *out = e;
  return 0;
}

void kt_otlp_free(struct kt_otlp *e)
{
  if (!e)
    return;
  pthread_mutex_lock(&e->mu);
  e->closing = 1;
  e->close_deadline = kt_mono_us() + e->o.flush_timeout_us;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  kt_info("otlp: %llu spans exported, %llu dropped",
          (unsigned long long)e->st.exported, (unsigned long long)e->st.dropped);
  destroy(e);
}

void kt_otlp_stats(struct kt_otlp *e, struct kt_otlp_stats *st)
{
  pthread_mutex_lock(&e->mu);
  *st = e->st;
  st->buffered = e->count;
  pthread_mutex_unlock(&e->mu);
}
