/* The shared caches against real engines: one conformance suite run on
 * Redis (KT_TEST_REDIS) and on etcd (KT_TEST_ETCD), started by
 * tests/lib/engines.py. Covers the kv client (get / put / TTL expiry /
 * create-if-absent / compare-and-set / outage), the span cache's
 * reserve-fetch-set semantics under a race, the patch cache seen from a
 * second instance (another process), the trace cache, and the raw key
 * layout as redis-cli and etcdctl see it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregator/kt_spancache.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_patchcache.h"
#include "frontend/kt_tracecache.h"
#include "kv/kt_kv.h"

struct fx {
  const char *kind;
  const char *addr;
  char ns[64]; /* a key prefix of its own per test */
};

static struct fx redis_fx = {"redis", NULL, ""};
static struct fx etcd_fx = {"etcd", NULL, ""};
static int seq;

static struct kt_kv *open_kv(const struct fx *f)
{
  struct kt_kv_opts o = {.address = f->addr, .dial_timeout_us = 2000000};
  struct kt_kv *kv = NULL;
  int rc = !strcmp(f->kind, "redis") ? kt_kv_redis_new(&o, &kv)
                                     : kt_kv_etcd_new(&o, &kv);
  assert_int_equal(rc, 0);
  return kv;
}

static struct kt_kv_choice choice(const struct fx *f, const char *prefix)
{
  struct kt_kv_choice c = {f->kind, NULL, NULL, NULL, NULL, 2000000};
  if (!strcmp(f->kind, "redis")) {
    c.redis_address = f->addr;
    c.redis_prefix = prefix;
  } else {
    c.etcd_endpoints = f->addr;
    c.etcd_prefix = prefix;
  }
  return c;
}

static int setup(void **state)
{
  struct fx *f = *state;
  snprintf(f->ns, sizeof f->ns, "/kt-test-%d-%d/", (int)getpid(), ++seq);
  return 0;
}

static void key(const struct fx *f, const char *k, char *buf, size_t len)
{
  snprintf(buf, len, "%s%s", f->ns, k);
}

static void sleep_ms(long ms)
{
  usleep((useconds_t)ms * 1000);
}

/* ---- kv conformance ---------------------------------------------------- */

static void test_get_put_del(void **state)
{
  struct fx *f = *state;
  struct kt_kv *kv = open_kv(f);
  struct kt_kv_val v;
  char k[128];
  key(f, "a", k, sizeof k);
  assert_int_equal(kt_kv_get(kv, k, &v), -ENOENT);
  uint64_t v1 = 0, v2 = 0;
  assert_int_equal(kt_kv_put(kv, k, "one", 3, 0, &v1), 0);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  assert_int_equal(v.len, 3);
  assert_string_equal(v.data, "one");
  assert_int_equal(v.ver, v1);
  assert_true(v1 != 0);
  kt_kv_val_free(&v);
  /* values are bytes: NULs and high bytes survive */
  const char bin[] = {'x', 0, (char)0xff, 0, 'y'};
  assert_int_equal(kt_kv_put(kv, k, bin, sizeof bin, 0, &v2), 0);
  assert_true(v2 != v1);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  assert_int_equal(v.len, sizeof bin);
  assert_memory_equal(v.data, bin, sizeof bin);
  assert_int_equal(v.ver, v2);
  kt_kv_val_free(&v);
  assert_int_equal(kt_kv_del(kv, k), 0);
  assert_int_equal(kt_kv_get(kv, k, &v), -ENOENT);
  assert_int_equal(kt_kv_del(kv, k), 0); /* absent: fine */
  kt_kv_free(kv);
}

/* Polls until the key is gone; the elapsed ms, or -1 past limit_ms. */
static long ms_until_gone(struct kt_kv *kv, const char *k, long limit_ms)
{
  int64_t t0 = kt_mono_us();
  struct kt_kv_val v;
  while (kt_mono_us() - t0 < limit_ms * 1000) {
    int rc = kt_kv_get(kv, k, &v);
    if (rc == -ENOENT)
      return (long)((kt_mono_us() - t0) / 1000);
    assert_int_equal(rc, 0);
    kt_kv_val_free(&v);
    sleep_ms(100);
  }
  return -1;
}

static void test_ttl_expiry(void **state)
{
  struct fx *f = *state;
  struct kt_kv *kv = open_kv(f);
  struct kt_kv_val v;
  char k[128], forever[128], created[128];
  key(f, "ttl", k, sizeof k);
  key(f, "forever", forever, sizeof forever);
  key(f, "created", created, sizeof created);
  assert_int_equal(kt_kv_put(kv, k, "x", 1, 1000000, NULL), 0);
  assert_int_equal(kt_kv_put(kv, forever, "y", 1, 0, NULL), 0);
  assert_int_equal(kt_kv_create(kv, created, "z", 1, 1000000, &v), 0);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  kt_kv_val_free(&v);
  /* Redis expires at 1 s; etcd's leases have a 2 s floor, ours a 10% (at
   * least 1 s) slack, and etcd checks expiry twice a second. */
  long gone = ms_until_gone(kv, k, 8000);
  assert_true(gone >= 0);
  assert_true(ms_until_gone(kv, created, 3000) >= 0);
  assert_int_equal(kt_kv_get(kv, forever, &v), 0);
  kt_kv_val_free(&v);
  /* a later put without TTL drops the TTL */
  assert_int_equal(kt_kv_put(kv, k, "x", 1, 1000000, NULL), 0);
  assert_int_equal(kt_kv_put(kv, k, "x2", 2, 0, NULL), 0);
  if (!strcmp(f->kind, "redis")) {
    sleep_ms(1500);
    assert_int_equal(kt_kv_get(kv, k, &v), 0);
    kt_kv_val_free(&v);
  }
  kt_kv_free(kv);
}

static void test_create_if_absent(void **state)
{
  struct fx *f = *state;
  struct kt_kv *kv = open_kv(f);
  struct kt_kv_val v, cur;
  char k[128];
  key(f, "c", k, sizeof k);
  assert_int_equal(kt_kv_create(kv, k, "first", 5, 0, &v), 0);
  assert_null(v.data);
  assert_true(v.ver != 0);
  assert_int_equal(kt_kv_create(kv, k, "second", 6, 0, &cur), -EEXIST);
  assert_string_equal(cur.data, "first");
  assert_int_equal(cur.len, 5);
  assert_int_equal(cur.ver, v.ver);
  kt_kv_val_free(&cur);
  assert_int_equal(kt_kv_get(kv, k, &cur), 0);
  assert_string_equal(cur.data, "first");
  kt_kv_val_free(&cur);
  kt_kv_free(kv);
}

static void test_cas(void **state)
{
  struct fx *f = *state;
  struct kt_kv *kv = open_kv(f);
  struct kt_kv_val v;
  char k[128], absent[128];
  key(f, "cas", k, sizeof k);
  key(f, "absent", absent, sizeof absent);
  uint64_t v1, v2;
  assert_int_equal(kt_kv_put(kv, k, "a", 1, 0, &v1), 0);
  assert_int_equal(kt_kv_cas(kv, k, v1 + 1, "b", 1, 0, NULL), -ESTALE);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  assert_string_equal(v.data, "a");
  kt_kv_val_free(&v);
  assert_int_equal(kt_kv_cas(kv, k, v1, "c", 1, 0, &v2), 0);
  assert_true(v2 != v1);
  assert_int_equal(kt_kv_cas(kv, k, v1, "d", 1, 0, NULL), -ESTALE);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  assert_string_equal(v.data, "c");
  assert_int_equal(v.ver, v2);
  kt_kv_val_free(&v);
  assert_int_equal(kt_kv_cas(kv, absent, v2, "e", 1, 0, NULL), -ESTALE);
  assert_int_equal(kt_kv_get(kv, absent, &v), -ENOENT);
  kt_kv_free(kv);
}

/* Nothing listens on the port: every call says -EIO (not -ENOENT, which
 * would make a cache believe in a miss), each counted. */
static void test_unreachable(void **state)
{
  struct fx *f = *state;
  char addr[64];
  int redis = !strcmp(f->kind, "redis");
  snprintf(addr, sizeof addr, "%s127.0.0.1:1", redis ? "" : "http://");
  struct kt_kv_opts o = {.address = addr, .dial_timeout_us = 500000};
  struct kt_kv *kv;
  assert_int_equal(redis ? kt_kv_redis_new(&o, &kv) : kt_kv_etcd_new(&o, &kv), 0);
  struct kt_kv_val v;
  char series[128], *text;
  double before = 0, after = 0;
  snprintf(series, sizeof series,
           "kv_errors_total{backend=\"%s\",op=\"create\"}", f->kind);
  text = kt_metrics_render(kt_metrics_default(), NULL);
  kt_metrics_scrape_value(text, series, &before);
  free(text);
  assert_int_equal(kt_kv_get(kv, "/k", &v), -EIO);
  assert_int_equal(kt_kv_put(kv, "/k", "v", 1, 0, NULL), -EIO);
  assert_int_equal(kt_kv_create(kv, "/k", "v", 1, 1000000, &v), -EIO);
  assert_int_equal(kt_kv_cas(kv, "/k", 1, "v", 1, 0, NULL), -EIO);
  text = kt_metrics_render(kt_metrics_default(), NULL);
  assert_int_equal(kt_metrics_scrape_value(text, series, &after), 0);
  free(text);
  assert_true(after == before + 1);
  kt_kv_free(kv);
}

/* A second endpoint that answers: etcd fails over to it. */
static void test_etcd_failover(void **state)
{
  struct fx *f = *state;
  char list[256], k[128];
  snprintf(list, sizeof list, "http://127.0.0.1:1,%s", f->addr);
  struct kt_kv_opts o = {.address = list, .dial_timeout_us = 500000};
  struct kt_kv *kv;
  struct kt_kv_val v;
  assert_int_equal(kt_kv_etcd_new(&o, &kv), 0);
  key(f, "fo", k, sizeof k);
  assert_int_equal(kt_kv_put(kv, k, "ok", 2, 0, NULL), 0);
  assert_int_equal(kt_kv_get(kv, k, &v), 0);
  assert_string_equal(v.data, "ok");
  kt_kv_val_free(&v);
  kt_kv_free(kv);
}

/* ---- span cache -------------------------------------------------------- */

static struct kt_spancache *open_sc(const struct fx *f)
{
  struct kt_kv_choice c = choice(f, f->ns);
  struct kt_spancache *sc = NULL;
  assert_int_equal(kt_spancache_open(&c, NULL, 0, &sc), 0);
  return sc;
}

#define RACERS 8

struct racer {
  const struct fx *f;
  pthread_barrier_t *start;
  int won, busy;
  char *value;
  int rc;
};

/* What the aggregator does: reserve or fetch; the winner "creates the
 * span" (50 ms) and sets it; losers see -EBUSY and retry until set. Each
 * racer has its own cache instance, as separate processes would. */
static void *race(void *p)
{
  struct racer *r = p;
  struct kt_spancache *sc = open_sc(r->f);
  pthread_barrier_wait(r->start);
  r->rc = -ETIMEDOUT;
  for (int i = 0; i < 300; i++) {
    char *val = NULL;
    uint64_t uid = 0;
    int rc = sc->ops->fetch_or_reserve(sc->impl, "c/g/r/ns/n/field=object,window=1",
                                       10000000, &val, &uid);
    if (rc == -EBUSY) {
      r->busy++;
      sleep_ms(10);
      continue;
    }
    if (rc == 0 && !val) {
      r->won++;
      sleep_ms(50);
      rc = sc->ops->set_reserved(sc->impl, "c/g/r/ns/n/field=object,window=1",
                                 "{\"traceparent\":\"00-aa-bb-01\"}", uid,
                                 60000000);
      if (rc == 0)
        r->value = strdup("{\"traceparent\":\"00-aa-bb-01\"}");
    } else {
      r->value = val;
    }
    r->rc = rc;
    break;
  }
  kt_spancache_free(sc);
  return NULL;
}

static void test_spancache_race(void **state)
{
  struct fx *f = *state;
  pthread_t t[RACERS];
  struct racer r[RACERS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, RACERS);
  for (int i = 0; i < RACERS; i++) {
    r[i] = (struct racer){f, &start, 0, 0, NULL, 0};
    pthread_create(&t[i], NULL, race, &r[i]);
  }
  int winners = 0, busy = 0;
  for (int i = 0; i < RACERS; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(r[i].rc, 0);
    assert_non_null(r[i].value);
    assert_string_equal(r[i].value, "{\"traceparent\":\"00-aa-bb-01\"}");
    winners += r[i].won;
    busy += r[i].busy > 0;
    free(r[i].value);
  }
  pthread_barrier_destroy(&start);
  assert_int_equal(winners, 1);
  assert_true(busy >= 1);
}

static void test_spancache_takeover_and_stale(void **state)
{
  struct fx *f = *state;
  struct kt_spancache *a = open_sc(f), *b = open_sc(f);
  const char *k = "c/g/r/ns/n/field=object,window=2";
  char *val = NULL;
  uint64_t uid1 = 0, uid2 = 0;
  /* a reserves for 1 s and dies without setting */
  assert_int_equal(a->ops->fetch_or_reserve(a->impl, k, 1000000, &val, &uid1), 0);
  assert_null(val);
  assert_int_equal(b->ops->fetch_or_reserve(b->impl, k, 1000000, &val, &uid2),
                   -EBUSY);
  int64_t t0 = kt_mono_us();
  int rc;
  do {
    sleep_ms(100);
    rc = b->ops->fetch_or_reserve(b->impl, k, 10000000, &val, &uid2);
  } while (rc == -EBUSY && kt_mono_us() - t0 < 8000000);
  assert_int_equal(rc, 0); /* b took the expired reservation over */
  assert_null(val);
  assert_true(kt_mono_us() - t0 >= 500000);
  /* a comes back: its reservation is gone */
  assert_int_equal(a->ops->set_reserved(a->impl, k, "late", uid1, 60000000),
                   -ESTALE);
  assert_int_equal(b->ops->set_reserved(b->impl, k, "mine", uid2 + 1, 60000000),
                   -ESTALE);
  assert_int_equal(b->ops->set_reserved(b->impl, k, "mine", uid2, 60000000), 0);
  /* set twice with the same uid: the reservation is used up */
  assert_int_equal(b->ops->set_reserved(b->impl, k, "again", uid2, 60000000),
                   -ESTALE);
  assert_int_equal(a->ops->fetch_or_reserve(a->impl, k, 1000000, &val, &uid1), 0);
  assert_string_equal(val, "mine");
  free(val);
  kt_spancache_free(a);
  kt_spancache_free(b);
}

static void test_spancache_unreachable(void **state)
{
  struct fx *f = *state;
  struct fx dead = *f;
  dead.addr = !strcmp(f->kind, "redis") ? "127.0.0.1:1" : "http://127.0.0.1:1";
  struct kt_spancache *sc = open_sc(&dead);
  char *val = NULL;
  uint64_t uid = 0;
  assert_int_equal(sc->ops->fetch_or_reserve(sc->impl, "k", 1000000, &val, &uid),
                   -EIO);
  assert_int_equal(sc->ops->set_reserved(sc->impl, "k", "v", 1, 1000000), -EIO);
  kt_spancache_free(sc);
}

/* ---- patch cache ------------------------------------------------------- */

static void test_patchcache_shared(void **state)
{
  struct fx *f = *state;
  struct kt_kv_choice c = choice(f, f->ns);
  struct kt_patchcache *p1, *p2;
  assert_int_equal(kt_patchcache_open(&c, NULL, 0, 60000000, 60000000, &p1), 0);
  assert_int_equal(kt_patchcache_open(&c, NULL, 0, 60000000, 60000000, &p2), 0);
  const char *obj = "c1/apps/deployments/ns/web";
  assert_null(kt_patchcache_get(p2, obj, "rv/123"));
  assert_int_equal(kt_patchcache_put(p1, obj, "rv/123", "{\"patch\":1}"), 0);
  assert_int_equal(kt_patchcache_put(p1, obj, "creation", "{\"snap\":\"c\"}"), 0);
  char *s = kt_patchcache_get(p2, obj, "rv/123");
  assert_non_null(s);
  assert_string_equal(s, "{\"patch\":1}");
  free(s);
  s = kt_patchcache_get(p2, obj, "creation");
  assert_non_null(s);
  assert_string_equal(s, "{\"snap\":\"c\"}");
  free(s);
  assert_null(kt_patchcache_get(p2, obj, "deletion"));
  assert_null(kt_patchcache_get(p2, obj, "rv/124"));
  /* a later write by the other process overwrites; p1 sees it although it
   * has its own copy in memory */
  assert_int_equal(kt_patchcache_put(p2, obj, "creation", "{\"snap\":\"c2\"}"), 0);
  s = kt_patchcache_get(p1, obj, "creation");
  assert_non_null(s);
  assert_string_equal(s, "{\"snap\":\"c2\"}");
  free(s);
  kt_patchcache_free(p1);
  kt_patchcache_free(p2);
}

static void test_patchcache_ttl(void **state)
{
  struct fx *f = *state;
  struct kt_kv_choice c = choice(f, f->ns);
  struct kt_patchcache *w, *r;
  assert_int_equal(kt_patchcache_open(&c, NULL, 0, 1000000, 1000000, &w), 0);
  assert_int_equal(kt_patchcache_open(&c, NULL, 0, 1000000, 1000000, &r), 0);
  assert_int_equal(kt_patchcache_put(w, "c/g/r/ns/n", "rv/9", "{}"), 0);
  char *s = kt_patchcache_get(r, "c/g/r/ns/n", "rv/9");
  assert_non_null(s);
  free(s);
  kt_patchcache_free(r); /* a fresh reader: nothing in its memory */
  assert_int_equal(kt_patchcache_open(&c, NULL, 0, 1000000, 1000000, &r), 0);
  int64_t t0 = kt_mono_us();
  while ((s = kt_patchcache_get(r, "c/g/r/ns/n", "rv/9")) &&
         kt_mono_us() - t0 < 8000000) {
    free(s);
    kt_patchcache_free(r);
    sleep_ms(200);
    assert_int_equal(kt_patchcache_open(&c, NULL, 0, 1000000, 1000000, &r), 0);
  }
  assert_null(s);
  kt_patchcache_free(w);
  kt_patchcache_free(r);
}

/* ---- trace cache ------------------------------------------------------- */

static void test_tracecache(void **state)
{
  struct fx *f = *state;
  struct kt_kv_choice c = choice(f, f->ns);
  struct kt_tracecache *a, *b;
  assert_int_equal(kt_tracecache_open(&c, NULL, &a), 0);
  assert_int_equal(kt_tracecache_open(&c, NULL, &b), 0);
  char *v = NULL;
  uint64_t id = 0xfedcba9876543210ULL;
  assert_int_equal(b->ops->get(b->impl, id, &v), -ENOENT);
  assert_int_equal(a->ops->put(a->impl, id, "{\"spans\":[]}", 1000000), 0);
  assert_int_equal(a->ops->put(a->impl, 7, "{\"long\":1}", 0), 0);
  assert_int_equal(b->ops->get(b->impl, id, &v), 0);
  assert_string_equal(v, "{\"spans\":[]}");
  free(v);
  int64_t t0 = kt_mono_us();
  int rc;
  while ((rc = b->ops->get(b->impl, id, &v)) == 0 && kt_mono_us() - t0 < 8000000) {
    free(v);
    sleep_ms(200);
  }
  assert_int_equal(rc, -ENOENT);
  assert_int_equal(b->ops->get(b->impl, 7, &v), 0);
  assert_string_equal(v, "{\"long\":1}");
  free(v);
  kt_tracecache_free(a);
  kt_tracecache_free(b);
}

/* ---- raw key layout, as the engines' own tools see it ------------------ */

/* The output of a shell command (trailing newline dropped). */
static void run(const char *cmd, char *out, size_t len)
{
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  pclose(p);
  while (n && out[n - 1] == '\n')
    out[--n] = 0;
}

/* The raw value of key, read with redis-cli or etcdctl. */
static void raw_value(const struct fx *f, const char *k, char *out, size_t len)
{
  char cmd[1024];
  if (!strcmp(f->kind, "redis")) {
    const char *colon = strrchr(f->addr, ':');
    snprintf(cmd, sizeof cmd, "redis-cli -h %.*s -p %s --raw HGET '%s' v",
             (int)(colon - f->addr), f->addr, colon + 1, k);
  } else {
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints=%s get '%s' --print-value-only",
             f->addr, k);
  }
  run(cmd, out, len);
}

static void test_key_layout(void **state)
{
  struct fx *f = *state;
  char out[512], tid[64], raw[512];
  /* the default prefixes, as the flags have them */
  struct kt_kv_choice span = choice(f, "/span/"), diff = choice(f, "/diff/"),
                      trace = choice(f, "/trace/");
  struct kt_spancache *sc;
  struct kt_patchcache *pc;
  struct kt_tracecache *tc;
  assert_int_equal(kt_spancache_open(&span, NULL, 0, &sc), 0);
  assert_int_equal(kt_patchcache_open(&diff, NULL, 0, 60000000, 60000000, &pc), 0);
  assert_int_equal(kt_tracecache_open(&trace, NULL, &tc), 0);
  char skey[256], obj[128];
  snprintf(obj, sizeof obj, "c/apps/deployments/ns/name-%d", (int)getpid());
  snprintf(skey, sizeof skey, "%s/field=object,window=123", obj);
  char *val = NULL;
  uint64_t uid;
  assert_int_equal(sc->ops->fetch_or_reserve(sc->impl, skey, 10000000, &val, &uid), 0);
  assert_int_equal(sc->ops->set_reserved(sc->impl, skey, "{\"traceparent\":\"x\"}",
                                         uid, 60000000), 0);
  assert_int_equal(kt_patchcache_put(pc, obj, "rv/123", "{\"p\":1}"), 0);
  assert_int_equal(kt_patchcache_put(pc, obj, "deletion", "{\"s\":1}"), 0);
  uint64_t id = 1000000000000ULL + (uint64_t)getpid();
  assert_int_equal(tc->ops->put(tc->impl, id, "{\"t\":1}", 60000000), 0);

  snprintf(raw, sizeof raw, "/span/%s", skey);
  raw_value(f, raw, out, sizeof out);
  /* state byte 1 (set), then the carrier */
  assert_string_equal(out, "\001{\"traceparent\":\"x\"}");
  snprintf(raw, sizeof raw, "/diff/%s/newRv/123", obj);
  raw_value(f, raw, out, sizeof out);
  assert_string_equal(out, "{\"p\":1}");
  snprintf(raw, sizeof raw, "/diff/%s/deletion", obj);
  raw_value(f, raw, out, sizeof out);
  assert_string_equal(out, "{\"s\":1}");
  snprintf(tid, sizeof tid, "/trace/%llu", (unsigned long long)id);
  raw_value(f, tid, out, sizeof out);
  assert_string_equal(out, "{\"t\":1}");
  kt_spancache_free(sc);
  kt_patchcache_free(pc);
  kt_tracecache_free(tc);
}

#define T(fn, fx) cmocka_unit_test_prestate_setup_teardown(fn, setup, NULL, fx)

int main(void)
{
  redis_fx.addr = getenv("KT_TEST_REDIS");
  etcd_fx.addr = getenv("KT_TEST_ETCD");
  if (!redis_fx.addr || !etcd_fx.addr) {
    fprintf(stderr, "KT_TEST_REDIS and KT_TEST_ETCD must be set "
            "(run under tests/lib/engines.py redis etcd -- ...)\n");
    return 1;
  }
  const struct CMUnitTest redis[] = {
      T(test_get_put_del, &redis_fx), T(test_ttl_expiry, &redis_fx),
      T(test_create_if_absent, &redis_fx), T(test_cas, &redis_fx),
      T(test_unreachable, &redis_fx), T(test_spancache_race, &redis_fx),
      T(test_spancache_takeover_and_stale, &redis_fx),
      T(test_spancache_unreachable, &redis_fx),
      T(test_patchcache_shared, &redis_fx), T(test_patchcache_ttl, &redis_fx),
      T(test_tracecache, &redis_fx), T(test_key_layout, &redis_fx),
  };
  const struct CMUnitTest etcd[] = {
      T(test_get_put_del, &etcd_fx), T(test_ttl_expiry, &etcd_fx),
      T(test_create_if_absent, &etcd_fx), T(test_cas, &etcd_fx),
      T(test_unreachable, &etcd_fx), T(test_etcd_failover, &etcd_fx),
      T(test_spancache_race, &etcd_fx),
      T(test_spancache_takeover_and_stale, &etcd_fx),
      T(test_spancache_unreachable, &etcd_fx),
      T(test_patchcache_shared, &etcd_fx), T(test_patchcache_ttl, &etcd_fx),
      T(test_tracecache, &etcd_fx), T(test_key_layout, &etcd_fx),
  };
  int failed = cmocka_run_group_tests_name("kv on redis", redis, NULL, NULL);
  failed += cmocka_run_group_tests_name("kv on etcd", etcd, NULL, NULL);
  return failed;
}
