/* The OTLP encoder and the exporter's buffer: protobuf primitives give the
 * bytes the protobuf spec gives; a span decodes back (with this file's own
 * reader walk) to the OTLP Span the .proto describes — ids, parent, kind,
 * nanosecond times, unique string attributes, logs as events with
 * zzz-logType; a request has one ResourceSpans per span type with
 * service.name; responses' partial_success is read; the JSON mapping uses
 * hex ids and string nanos; a full buffer drops and counts instead of
 * blocking, and shutdown accounts for what it could not send. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/kt_metrics.h"
#include "core/kt_pb.h"
#include "core/kt_time.h"
#include "store/kt_otlp.h"

/* ---- kt_pb --------------------------------------------------------------- */

static void test_pb_known_bytes(void **state)
{
  struct kt_pb pb = {0};
  size_t len;
  kt_pb_varint_field(&pb, 1, 150);         /* the protobuf docs' example */
  kt_pb_string_field(&pb, 2, "testing");
  kt_pb_fixed64_field(&pb, 7, 0x0102030405060708ull);
  kt_pb_fixed32_field(&pb, 16, 0x101);
  uint8_t *b = kt_pb_take(&pb, &len);
  static const uint8_t want[] = {
      0x08, 0x96, 0x01,
      0x12, 0x07, 't', 'e', 's', 't', 'i', 'n', 'g',
      0x39, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
      0x85, 0x01, 0x01, 0x01, 0x00, 0x00};
  assert_int_equal(len, sizeof want);
  assert_memory_equal(b, want, sizeof want);
  free(b);
}

/* A nested message longer than 127 bytes needs a 2-byte length: the body
 * moves and the output stays canonical. */
static void test_pb_nested(void **state)
{
  struct kt_pb pb = {0};
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  size_t outer = kt_pb_begin(&pb, 3);
  size_t inner = kt_pb_begin(&pb, 1);
  kt_pb_string_field(&pb, 2, big);
  kt_pb_end(&pb, inner);
  kt_pb_varint_field(&pb, 4, 1);
  kt_pb_end(&pb, outer);
  assert_int_equal(kt_pb_error(&pb), 0);
  /* 3:LEN { 1:LEN { 2:LEN 299 x } 4:1 } */
  size_t len;
  uint8_t *b = kt_pb_take(&pb, &len);
  assert_int_equal(len, 1 + 2 + 1 + 2 + 1 + 2 + 299 + 2);
  assert_int_equal(b[0], 0x1a);
  assert_true(b[1] & 0x80); /* a 2-byte length */
  struct kt_pb_reader r = {b, b + len}, in;
  struct kt_pb_field f;
  assert_int_equal(kt_pb_next(&r, &f), 1);
  assert_int_equal(f.num, 3);
  assert_int_equal(f.len, 1 + 2 + 1 + 2 + 299 + 2);
  in = (struct kt_pb_reader){f.data, f.data + f.len};
  assert_int_equal(kt_pb_next(&in, &f), 1);
  assert_int_equal(f.num, 1);
  assert_int_equal(f.len, 1 + 2 + 299);
  assert_int_equal(kt_pb_next(&in, &f), 1);
  assert_int_equal(f.num, 4);
  assert_int_equal(f.v, 1);
  assert_int_equal(kt_pb_next(&in, &f), 0);
  assert_int_equal(kt_pb_next(&r, &f), 0);
  /* truncated input is refused, never read past */
  struct kt_pb_reader t = {b, b + 10};
  assert_int_equal(kt_pb_next(&t, &f), -EBADMSG);
  free(b);
}

static void test_pb_limit(void **state)
{
  struct kt_pb pb = {.limit = 16};
  kt_pb_string_field(&pb, 1, "0123456789abcdefghij");
  assert_int_equal(kt_pb_error(&pb), -EMSGSIZE);
  kt_pb_varint_field(&pb, 2, 1); /* sticky: a no-op */
  assert_int_equal(kt_pb_error(&pb), -EMSGSIZE);
  kt_pb_free(&pb);
}

/* ---- a decoded span -------------------------------------------------------- */

struct attr {
  char key[64], value[256];
};

struct decoded {
  uint8_t trace[16], span[8], parent[8];
  size_t trace_len, span_len, parent_len;
  char name[128];
  uint64_t kind, start, end;
  struct attr attrs[32];
  int nattrs;
  struct {
    uint64_t time;
    char name[128];
    struct attr attrs[4];
    int nattrs;
  } events[8];
  int nevents;
};

static void copy_str(char *dst, size_t cap, const struct kt_pb_field *f)
{
  assert_int_equal(f->wire, KT_PB_LEN);
  assert_true(f->len < cap);
  memcpy(dst, f->data, f->len);
  dst[f->len] = 0;
}

/* KeyValue { key = 1; AnyValue value = 2 { string_value = 1 } } */
static void decode_attr(const struct kt_pb_field *kv, struct attr *a)
{
  struct kt_pb_reader r = {kv->data, kv->data + kv->len}, v;
  struct kt_pb_field f;
  int seen_value = 0;
  while (kt_pb_next(&r, &f) > 0) {
    if (f.num == 1) {
      copy_str(a->key, sizeof a->key, &f);
    } else {
      assert_int_equal(f.num, 2);
      v = (struct kt_pb_reader){f.data, f.data + f.len};
      assert_int_equal(kt_pb_next(&v, &f), 1);
      assert_int_equal(f.num, 1); /* string_value: every tag is a string */
      copy_str(a->value, sizeof a->value, &f);
      assert_int_equal(kt_pb_next(&v, &f), 0);
      seen_value = 1;
    }
  }
  assert_true(seen_value);
}

static void decode_event(const struct kt_pb_field *ef, struct decoded *d)
{
  struct kt_pb_reader r = {ef->data, ef->data + ef->len};
  struct kt_pb_field f;
  __typeof__(d->events[0]) *ev = &d->events[d->nevents++];
  while (kt_pb_next(&r, &f) > 0) {
    switch (f.num) {
    case 1:
      assert_int_equal(f.wire, KT_PB_I64);
      ev->time = f.v;
      break;
    case 2:
      copy_str(ev->name, sizeof ev->name, &f);
      break;
    case 3:
      decode_attr(&f, &ev->attrs[ev->nattrs++]);
      break;
    default:
      fail_msg("unexpected Event field %u", f.num);
    }
  }
}

static void decode_span(const uint8_t *b, size_t len, struct decoded *d)
{
  struct kt_pb_reader r = {b, b + len};
  struct kt_pb_field f;
  memset(d, 0, sizeof *d);
  int rc;
  while ((rc = kt_pb_next(&r, &f)) > 0) {
    switch (f.num) {
    case 1:
      assert_int_equal(f.wire, KT_PB_LEN);
      d->trace_len = f.len;
      memcpy(d->trace, f.data, f.len < 16 ? f.len : 16);
      break;
    case 2:
      d->span_len = f.len;
      memcpy(d->span, f.data, f.len < 8 ? f.len : 8);
      break;
    case 4:
      d->parent_len = f.len;
      memcpy(d->parent, f.data, f.len < 8 ? f.len : 8);
      break;
    case 5:
      copy_str(d->name, sizeof d->name, &f);
      break;
    case 6:
      assert_int_equal(f.wire, KT_PB_VARINT);
      d->kind = f.v;
      break;
    case 7:
    case 8:
      assert_int_equal(f.wire, KT_PB_I64); /* fixed64 */
      *(f.num == 7 ? &d->start : &d->end) = f.v;
      break;
    case 9:
      decode_attr(&f, &d->attrs[d->nattrs++]);
      break;
    case 11:
      decode_event(&f, d);
      break;
    default:
      fail_msg("unexpected Span field %u", f.num);
    }
  }
  assert_int_equal(rc, 0);
}

static const char *attr(const struct attr *a, int n, const char *key)
{
  const char *v = NULL;
  for (int i = 0; i < n; i++)
    if (strcmp(a[i].key, key) == 0) {
      assert_null(v); /* unique keys */
      v = a[i].value;
    }
  return v;
}

static struct kt_span *sample(const char *svc, uint64_t id, uint64_t parent)
{
  struct kt_span *s = kt_span_new(svc, "pods/web-1");
  for (int i = 0; i < 16; i++)
    s->trace_id[i] = (uint8_t)(0xa0 + i);
  s->span_id = id;
  s->parent_id = parent;
  s->start_us = 1700000000123456;
  s->end_us = 1700000001123456;
  kt_span_add_tag(s, "cluster", "c1");
  kt_span_add_tag(s, "zzz-traceSource", svc);
  kt_span_add_tag(s, "weird", "quote \" é 漢");
  kt_span_add_tag(s, "cluster", "c2"); /* the later one wins */
  kt_span_add_log(s, s->start_us + 5, "audit/objectDiff", "spec.replicas 1 -> 2");
  kt_span_add_log(s, s->start_us + 6, "realError", "Conflict");
  return s;
}

static void test_span_protobuf(void **state)
{
  struct kt_span *s = sample("audit", 0x0102030405060708ull, 0x1112131415161718ull);
  size_t len;
  uint8_t *b = kt_otlp_encode_span(KT_OTLP_PROTOBUF, s, &len);
  struct decoded d;
  decode_span(b, len, &d);
  assert_int_equal(d.trace_len, 16);
  assert_memory_equal(d.trace, s->trace_id, 16);
  static const uint8_t id[8] = {1, 2, 3, 4, 5, 6, 7, 8},
                       pid[8] = {0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
  assert_int_equal(d.span_len, 8);
  assert_memory_equal(d.span, id, 8); /* big-endian: hex reads the same */
  assert_int_equal(d.parent_len, 8);
  assert_memory_equal(d.parent, pid, 8);
  assert_string_equal(d.name, "pods/web-1");
  assert_int_equal(d.kind, 1); /* SPAN_KIND_INTERNAL */
  assert_int_equal(d.start, 1700000000123456000ull);
  assert_int_equal(d.end, 1700000001123456000ull);
  assert_int_equal(d.nattrs, 3);
  assert_string_equal(attr(d.attrs, d.nattrs, "cluster"), "c2");
  assert_string_equal(attr(d.attrs, d.nattrs, "weird"), "quote \" é 漢");
  assert_string_equal(attr(d.attrs, d.nattrs, "zzz-traceSource"), "audit");
  assert_int_equal(d.nevents, 2);
  assert_string_equal(d.events[0].name, "spec.replicas 1 -> 2");
  assert_int_equal(d.events[0].time, d.start); /* §1.12: the span's start */
  assert_string_equal(attr(d.events[0].attrs, d.events[0].nattrs, "zzz-logType"),
                      "audit/objectDiff");
  assert_string_equal(attr(d.events[1].attrs, d.events[1].nattrs, "zzz-logType"),
                      "realError");
  free(b);
  kt_span_free(s);
  /* a trace root has no parent_span_id at all */
  s = sample("object", 9, 0);
  b = kt_otlp_encode_span(KT_OTLP_PROTOBUF, s, &len);
  decode_span(b, len, &d);
  assert_int_equal(d.parent_len, 0);
  free(b);
  /* end before start (a clock step): sent as a zero-length span */
  s->end_us = s->start_us - 5;
  b = kt_otlp_encode_span(KT_OTLP_PROTOBUF, s, &len);
  decode_span(b, len, &d);
  assert_int_equal(d.end, d.start);
  free(b);
  kt_span_free(s);
}

/* Resource { attributes = 1 } -> service.name and the configured ones */
static void resource_attrs(const struct kt_pb_field *res, struct attr *a, int *n)
{
  struct kt_pb_reader r = {res->data, res->data + res->len};
  struct kt_pb_field f;
  while (kt_pb_next(&r, &f) > 0) {
    assert_int_equal(f.num, 1);
    decode_attr(&f, &a[(*n)++]);
  }
}

static void test_request_groups_by_type(void **state)
{
  struct kt_span *s[4] = {sample("audit", 1, 9), sample("object", 9, 0),
                          sample("audit", 2, 9), sample("link", 3, 9)};
  size_t len;
  uint8_t *b = kt_otlp_encode_request(KT_OTLP_PROTOBUF,
                                      (const struct kt_span *const *)s, 4,
                                      "service.version=dev,service.name=x,"
                                      "deployment.environment=test", &len);
  assert_non_null(b);
  struct kt_pb_reader req = {b, b + len};
  struct kt_pb_field f, g, h;
  const char *want_svc[] = {"audit", "object", "link"};
  int want_spans[] = {2, 1, 1}, nrs = 0;
  while (kt_pb_next(&req, &f) > 0) {
    assert_int_equal(f.num, 1); /* resource_spans */
    struct kt_pb_reader rs = {f.data, f.data + f.len};
    struct attr a[8];
    int na = 0, nspans = 0;
    while (kt_pb_next(&rs, &g) > 0) {
      if (g.num == 1) {
        resource_attrs(&g, a, &na);
        continue;
      }
      assert_int_equal(g.num, 2); /* scope_spans */
      struct kt_pb_reader ss = {g.data, g.data + g.len};
      while (kt_pb_next(&ss, &h) > 0) {
        if (h.num == 1) { /* scope { name = 1 } */
          struct kt_pb_reader sc = {h.data, h.data + h.len};
          struct kt_pb_field n;
          char name[32];
          assert_int_equal(kt_pb_next(&sc, &n), 1);
          assert_int_equal(n.num, 1);
          copy_str(name, sizeof name, &n);
          assert_string_equal(name, "kelemetry");
        } else {
          assert_int_equal(h.num, 2);
          struct decoded d;
          decode_span(h.data, h.len, &d);
          assert_string_equal(attr(d.attrs, d.nattrs, "zzz-traceSource"),
                              want_svc[nrs]);
          nspans++;
        }
      }
    }
    assert_true(nrs < 3);
    assert_int_equal(na, 3); /* the configured service.name is not sent */
    assert_string_equal(attr(a, na, "service.name"), want_svc[nrs]);
    assert_string_equal(attr(a, na, "service.version"), "dev");
    assert_string_equal(attr(a, na, "deployment.environment"), "test");
    assert_int_equal(nspans, want_spans[nrs]);
    nrs++;
  }
  assert_int_equal(nrs, 3);
  free(b);
  for (int i = 0; i < 4; i++)
    kt_span_free(s[i]);
}

static void test_response(void **state)
{
  /* partial_success (1) { rejected_spans (1) = 3, error_message (2) = "no" } */
  static const uint8_t partial[] = {0x0a, 0x06, 0x08, 0x03, 0x12, 0x02, 'n', 'o'};
  static const uint8_t unknown[] = {0x10, 0x05}; /* field 2: skipped */
  static const uint8_t truncated[] = {0x0a, 0x06, 0x08};
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_PROTOBUF, "", 0), 0);
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_PROTOBUF, partial, sizeof partial), 3);
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_PROTOBUF, unknown, sizeof unknown), 0);
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_PROTOBUF, truncated, sizeof truncated),
                   -EBADMSG);
  const char *j = "{\"partialSuccess\":{\"rejectedSpans\":\"7\",\"errorMessage\":\"x\"}}";
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_JSON, j, strlen(j)), 7);
  j = "{\"partialSuccess\":{\"rejectedSpans\":2}}";
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_JSON, j, strlen(j)), 2);
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_JSON, "{}", 2), 0);
  assert_int_equal(kt_otlp_parse_response(KT_OTLP_JSON, "<html>", 6), -EBADMSG);
}

static void test_json_mapping(void **state)
{
  struct kt_span *s = sample("event", 0x0102030405060708ull, 0xff);
  size_t len;
  uint8_t *b = kt_otlp_encode_request(KT_OTLP_JSON, (const struct kt_span *const *)&s,
                                      1, NULL, &len);
  cJSON *root = cJSON_ParseWithLength((const char *)b, len);
  assert_non_null(root);
  cJSON *rs = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "resourceSpans"), 0);
  cJSON *res = cJSON_GetArrayItem(
      cJSON_GetObjectItem(cJSON_GetObjectItem(rs, "resource"), "attributes"), 0);
  assert_string_equal(cJSON_GetObjectItem(res, "key")->valuestring, "service.name");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "value"),
                                          "stringValue")->valuestring, "event");
  cJSON *ss = cJSON_GetArrayItem(cJSON_GetObjectItem(rs, "scopeSpans"), 0);
  cJSON *sp = cJSON_GetArrayItem(cJSON_GetObjectItem(ss, "spans"), 0);
  assert_string_equal(cJSON_GetObjectItem(sp, "traceId")->valuestring,
                      "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  assert_string_equal(cJSON_GetObjectItem(sp, "spanId")->valuestring,
                      "0102030405060708");
  assert_string_equal(cJSON_GetObjectItem(sp, "parentSpanId")->valuestring,
                      "00000000000000ff");
  assert_string_equal(cJSON_GetObjectItem(sp, "startTimeUnixNano")->valuestring,
                      "1700000000123456000");
  assert_int_equal(cJSON_GetObjectItem(sp, "kind")->valueint, 1);
  cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(sp, "events"), 1);
  assert_string_equal(cJSON_GetObjectItem(ev, "name")->valuestring, "Conflict");
  cJSON_Delete(root);
  free(b);
  kt_span_free(s);
}

/* ---- the exporter without a collector -------------------------------------- */

/* A loopback port nobody listens on: connection refused at once. */
static int closed_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t l = sizeof a;
  bind(fd, (struct sockaddr *)&a, sizeof a);
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

static double value(struct kt_metrics *r, const char *series)
{
  double v = -1;
  char *text = kt_metrics_render(r, NULL);
  kt_metrics_scrape_value(text, series, &v);
  free(text);
  return v;
}

static void test_buffer_full_drops(void **state)
{
  char ep[64];
  snprintf(ep, sizeof ep, "127.0.0.1:%d", closed_port());
  struct kt_metrics *r = kt_metrics_new();
  struct kt_otlp_opts o = {.endpoint = ep, .insecure = 1, .buffer_spans = 5,
                           .batch_spans = 100, .batch_delay_us = 3600000000,
                           .backoff_initial_us = 20000, .backoff_max_us = 50000,
                           .flush_timeout_us = 300000, .metrics = r};
  struct kt_otlp *e;
  assert_int_equal(kt_otlp_new(&o, &e), 0);
  struct kt_span *s = sample("audit", 1, 2);
  int refused = 0;
  int64_t t0 = kt_mono_us();
  for (int i = 0; i < 12; i++)
    refused += kt_otlp_put(e, s) == -ENOBUFS;
  assert_true(kt_mono_us() - t0 < 500000); /* never blocks */
  assert_int_equal(refused, 7);
  assert_true(value(r, "otlp_export_dropped_total{reason=\"buffer_full\"}") == 7);
  assert_true(value(r, "otlp_export_buffer_spans") == 5);
  struct kt_otlp_stats st;
  kt_otlp_stats(e, &st);
  assert_int_equal(st.put, 12);
  assert_int_equal(st.dropped, 7);
  assert_int_equal(st.buffered, 5);
  int64_t t1 = kt_mono_us();
  kt_otlp_free(e); /* the collector never answers: shutdown drops the 5 */
  assert_true(kt_mono_us() - t1 < 2000000);
  assert_true(value(r, "otlp_export_dropped_total{reason=\"shutdown\"}") == 5);
  assert_true(value(r, "otlp_export_failures_total{reason=\"connection\"}") >= 1);
  assert_true(value(r, "otlp_export_spans_total") == 0);
  kt_span_free(s);
  kt_metrics_free(r);
}

static void test_bad_options(void **state)
{
  struct kt_otlp *e;
  const char *bad_ep[] = {"", "ftp://x:1/v1/traces", "http://", "http:///v1"};
  for (size_t i = 0; i < sizeof bad_ep / sizeof *bad_ep; i++) {
    struct kt_otlp_opts o = {.endpoint = bad_ep[i]};
    assert_int_equal(kt_otlp_new(&o, &e), -EINVAL);
  }
  struct kt_otlp_opts o = {.endpoint = "127.0.0.1:1", .resource_attributes = "novalue"};
  assert_int_equal(kt_otlp_new(&o, &e), -EINVAL);
  o = (struct kt_otlp_opts){.endpoint = "127.0.0.1:1", .headers = "a b=c"};
  assert_int_equal(kt_otlp_new(&o, &e), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pb_known_bytes),
      cmocka_unit_test(test_pb_nested),
      cmocka_unit_test(test_pb_limit),
      cmocka_unit_test(test_span_protobuf),
      cmocka_unit_test(test_request_groups_by_type),
      cmocka_unit_test(test_response),
      cmocka_unit_test(test_json_mapping),
      cmocka_unit_test(test_buffer_full_drops),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
