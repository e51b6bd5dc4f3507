/* The audit queue on Redis Streams in process, against the real Redis that
 * tests/lib/engines.py starts (KT_TEST_REDIS): the producer's partition
 * keys and refusals, and the consumer's handling of what goes wrong
 * between a read and its acknowledgement (a lost XREADGROUP answer, a
 * malformed entry, a consumer group that Redis lost). The multi-process
 * scenarios (kill -9, Redis restart) are tests/e2e/test_mq_redis.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/kt_audit.h"
#include "audit/kt_consumer.h"
#include "audit/kt_mq.h"
#include "audit/kt_mq_consumer.h"
#include "audit/kt_mq_producer.h"
#include "audit/kt_pipeline.h"
#include "core/kt_time.h"

static char addr[128];
static redisContext *rc_;

static struct kt_mq_opts opts(const char *prefix)
{
  return (struct kt_mq_opts){addr, prefix, 4, 1000, 500000, "kelemetry",
                             KT_MQ_KEY_OBJECT, 0};
}

static long long num(const char *fmt, const char *arg)
{
  redisReply *r = redisCommand(rc_, fmt, arg);
  assert_non_null(r);
  long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
  freeReplyObject(r);
  return n;
}

static long long total_len(const char *prefix)
{
  long long n = 0;
  char key[128];
  for (int p = 0; p < 4; p++) {
    snprintf(key, sizeof key, "%s:%d", prefix, p);
    n += num("XLEN %s", key);
  }
  return n;
}

/* The first n events of the demo scenario as an array. */
static cJSON *demo(int n)
{
  char path[512], line[1 << 16];
  const char *src = getenv("KT_SRC");
  snprintf(path, sizeof path, "%s/examples/demo-deployment.jsonl", src ? src : ".");
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  cJSON *a = cJSON_CreateArray();
  while (n-- > 0 && fgets(line, sizeof line, f))
    cJSON_AddItemToArray(a, cJSON_Parse(line));
  fclose(f);
  return a;
}

struct pipe {
  char dir[64];
  struct kt_pipeline p;
};

static void pipe_open(struct pipe *p)
{
  char path[128];
  snprintf(p->dir, sizeof p->dir, "/tmp/kt-mqtest-XXXXXX");
  assert_non_null(mkdtemp(p->dir));
  snprintf(path, sizeof path, "%s/kelemetry.db", p->dir);
  struct kt_pipeline_opts o = {.db_path = path, .agg = {.owner_linker = 1},
                               .filter = {"", "", NULL, NULL, NULL},
                               .consumer = {.workers = 2, .queue_limit = 1000}};
  assert_int_equal(kt_pipeline_open(&o, &p->p), 0);
}

static void pipe_close(struct pipe *p)
{
  char cmd[128];
  kt_pipeline_close(&p->p);
  snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
  assert_int_equal(system(cmd), 0);
}

/* Until the streams of prefix are empty (every entry acknowledged and
 * deleted), at most 15 s. */
static int drained(const char *prefix)
{
  for (int i = 0; i < 300; i++) {
    if (total_len(prefix) == 0)
      return 1;
    usleep(50000);
  }
  return 0;
}

static uint64_t processed(struct kt_consumer *c)
{
  struct kt_consumer_stats s;
  kt_consumer_stats(c, &s);
  return s.traced + s.filtered + s.failed + s.duplicate;
}

static void test_keys(void **state)
{
  enum kt_mq_key k;
  assert_int_equal(kt_mq_key_parse("audit-id", &k), 0);
  assert_int_equal(k, KT_MQ_KEY_AUDIT_ID);
  assert_int_equal(kt_mq_key_parse("objects", &k), -EINVAL);
  cJSON *a = demo(1);
  struct kt_audit_event ev;
  char err[256], key[512];
  assert_int_equal(kt_audit_event_init(&ev, cJSON_DetachItemFromArray(a, 0), "c1",
                                       err, sizeof err), KT_AUDIT_OK);
  kt_mq_key_of(KT_MQ_KEY_CLUSTER, &ev, key, sizeof key);
  assert_string_equal(key, "c1/");
  kt_mq_key_of(KT_MQ_KEY_OBJECT, &ev, key, sizeof key);
  assert_string_equal(key, "c1/c1/apps/deployments/default/demo");
  kt_mq_key_of(KT_MQ_KEY_AUDIT_ID, &ev, key, sizeof key);
  assert_string_equal(key, "c1/c386bbc4-cd61-4e30-98f1-6adf91b7584a");
  kt_audit_event_free(&ev);
  cJSON_Delete(a);
}

/* Every valid event becomes one entry; bad ones are reported, not added. */
static void test_produce(void **state)
{
  struct kt_mq_opts o = opts("p1");
  struct kt_mq_producer *p;
  struct kt_submit_result r;
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  cJSON *a = demo(20);
  cJSON_AddItemToArray(a, cJSON_Parse("{\"kind\":\"Event\",\"verb\":\"get\"}"));
  assert_int_equal(kt_mq_produce(p, "c1", "10.0.0.1", a, 0, &r), 0);
  assert_int_equal(r.accepted, 20);
  assert_int_equal(r.rejected, 1);
  assert_int_equal(r.first_bad, 20);
  assert_int_equal(total_len("p1"), 20);
  cJSON_Delete(a);
  kt_mq_producer_free(p);
}

static void test_refusals(void **state)
{
  struct kt_mq_opts o = opts("p2");
  o.max_len = 5;
  o.partitions = 1;
  struct kt_mq_producer *p;
  struct kt_submit_result r;
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  cJSON *a = demo(10);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), 0);
  cJSON_Delete(a);
  a = demo(1);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), -EAGAIN); /* full */
  cJSON_Delete(a);
  kt_mq_producer_free(p);
  o.address = "127.0.0.1:1"; /* nothing listens there */
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  a = demo(1);
  int64_t t0 = kt_mono_us();
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), -ENOTCONN);
  assert_true(kt_mono_us() - t0 < 1000000);
  cJSON_Delete(a);
  kt_mq_producer_free(p);
}

/* Produced, consumed, stored, acknowledged and deleted. */
static void test_round_trip(void **state)
{
  struct kt_mq_opts o = opts("p3");
  struct kt_mq_producer *p;
  struct kt_mq_consumer *m;
  struct kt_submit_result r;
  struct pipe pp;
  pipe_open(&pp);
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  assert_int_equal(kt_mq_consumer_start(&o, "rt", pp.p.consumer, pp.p.store, &m), 0);
  cJSON *a = demo(73);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), 0);
  cJSON_Delete(a);
  assert_true(drained("p3"));
  assert_int_equal(processed(pp.p.consumer), 73);
  assert_int_equal(kt_mq_consumer_owned(m), 4);
  kt_mq_consumer_stop(m);
  assert_int_equal(num("EXISTS %s", "p3:0:lease"), 0); /* given back */
  assert_true(kt_store_count(pp.p.store) > 0);
  kt_mq_producer_free(p);
  pipe_close(&pp);
}

/* An entry delivered to us whose XREADGROUP answer never arrived (here:
 * read by hand under the consumer's name) is read again, and so is a
 * dead consumer's; a malformed entry is acknowledged, not retried. */
static void test_leftovers(void **state)
{
  struct kt_mq_opts o = opts("p4");
  o.partitions = 1;
  struct kt_mq_producer *p;
  struct kt_mq_consumer *m;
  struct kt_submit_result r;
  struct pipe pp;
  pipe_open(&pp);
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  cJSON *a = demo(4);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), 0);
  cJSON_Delete(a);
  freeReplyObject(redisCommand(rc_, "XADD p4:0 * e not-json c c1 s x"));
  freeReplyObject(redisCommand(rc_, "XGROUP CREATE p4:0 kelemetry 0"));
  freeReplyObject(redisCommand(rc_, "XREADGROUP GROUP kelemetry me COUNT 2 STREAMS p4:0 >"));
  freeReplyObject(redisCommand(rc_, "XREADGROUP GROUP kelemetry dead COUNT 2 STREAMS p4:0 >"));
  assert_int_equal(kt_mq_consumer_start(&o, "me", pp.p.consumer, pp.p.store, &m), 0);
  assert_true(drained("p4"));
  assert_int_equal(processed(pp.p.consumer), 4);
  redisReply *x = redisCommand(rc_, "XPENDING p4:0 kelemetry");
  assert_int_equal(x->element[0]->integer, 0);
  freeReplyObject(x);
  kt_mq_consumer_stop(m);
  kt_mq_producer_free(p);
  pipe_close(&pp);
}

/* An entry delivered 10 times (it crashed every consumer that took it) is
 * moved to <prefix>:dead, not processed once more. */
static void test_poison(void **state)
{
  struct kt_mq_opts o = opts("p6");
  o.partitions = 1;
  struct kt_mq_producer *p;
  struct kt_mq_consumer *m;
  struct kt_submit_result r;
  struct pipe pp;
  pipe_open(&pp);
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  cJSON *a = demo(2);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), 0);
  cJSON_Delete(a);
  freeReplyObject(redisCommand(rc_, "XGROUP CREATE p6:0 kelemetry 0"));
  redisReply *x = redisCommand(rc_, "XREADGROUP GROUP kelemetry gone COUNT 1 STREAMS p6:0 >");
  assert_int_equal(x->type, REDIS_REPLY_ARRAY);
  const char *id = x->element[0]->element[1]->element[0]->element[0]->str;
  freeReplyObject(redisCommand(rc_, "XCLAIM p6:0 kelemetry gone 0 %s RETRYCOUNT 10", id));
  freeReplyObject(x);
  assert_int_equal(kt_mq_consumer_start(&o, "me", pp.p.consumer, pp.p.store, &m), 0);
  assert_true(drained("p6"));
  assert_int_equal(processed(pp.p.consumer), 1); /* the other one */
  assert_int_equal(num("XLEN %s", "p6:dead"), 1);
  kt_mq_consumer_stop(m);
  kt_mq_producer_free(p);
  pipe_close(&pp);
}

/* Redis lost the streams and the group (a restart without persistence):
 * the consumer makes the group again and goes on. */
static void test_group_lost(void **state)
{
  struct kt_mq_opts o = opts("p5");
  o.partitions = 1;
  struct kt_mq_producer *p;
  struct kt_mq_consumer *m;
  struct kt_submit_result r;
  struct pipe pp;
  pipe_open(&pp);
  assert_int_equal(kt_mq_producer_new(&o, &p), 0);
  assert_int_equal(kt_mq_consumer_start(&o, NULL, pp.p.consumer, pp.p.store, &m), 0);
  for (int i = 0; i < 100 && !kt_mq_consumer_owned(m); i++)
    usleep(20000);
  usleep(300000); /* reading */
  freeReplyObject(redisCommand(rc_, "DEL p5:0"));
  usleep(300000);
  cJSON *a = demo(5);
  assert_int_equal(kt_mq_produce(p, "c1", "", a, 0, &r), 0);
  cJSON_Delete(a);
  assert_true(drained("p5"));
  assert_int_equal(processed(pp.p.consumer), 5);
  kt_mq_consumer_stop(m);
  kt_mq_producer_free(p);
  pipe_close(&pp);
}

int main(void)
{
  const char *a = getenv("KT_TEST_REDIS");
  if (!a) {
    fprintf(stderr, "KT_TEST_REDIS not set (run under tests/lib/engines.py)\n");
    return 1;
  }
  snprintf(addr, sizeof addr, "%s", a);
  char host[64];
  snprintf(host, sizeof host, "%.*s", (int)(strrchr(a, ':') - a), a);
  rc_ = redisConnect(host, atoi(strrchr(a, ':') + 1));
  if (!rc_ || rc_->err)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys),      cmocka_unit_test(test_produce),
      cmocka_unit_test(test_refusals),  cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_leftovers), cmocka_unit_test(test_poison),
      cmocka_unit_test(test_group_lost),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  redisFree(rc_);
  return rc;
}
