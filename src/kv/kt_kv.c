/* kt_kv: the backend-independent part; see the header. */
#include "kv/kt_kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_log.h"
#include "core/kt_metrics.h"

void kt_kv_val_free(struct kt_kv_val *v)
{
  if (!v)
    return;
  free(v->data);
  v->data = NULL;
  v->len = 0;
}

int kt__kv_init(struct kt_kv *kv, const char *backend, const char *where)
{
  static const char *const labels[] = {"backend", "op", NULL};
  static const char *const blabel[] = {"backend", NULL};
  struct kt_metrics *r = kt_metrics_default();
  struct kt_kv_health *h = &kv->health;
  pthread_mutex_init(&h->mu, NULL);
  h->backend = backend;
  snprintf(h->where, sizeof h->where, "%s", where);
  h->m_errors = kt_metrics_counter(r, "kv_errors_total",
      "Shared-cache calls that failed because Redis or etcd could not be "
      "reached or failed (the caller retries)", labels);
  h->m_outages = kt_metrics_counter(r, "kv_outages_total",
      "Times Redis or etcd became unreachable (one per outage)", blabel);
  return 0;
}

/* Logged once per outage, not per call: a down engine is hit by every
 * worker many times a second. */
void kt__kv_failed(struct kt_kv_health *h, const char *op, const char *why)
{
  kt_metric_inc(h->m_errors, (const char *const[]){h->backend, op});
  pthread_mutex_lock(&h->mu);
  int first = !h->down;
  __atomic_store_n(&h->down, 1, __ATOMIC_RELEASE);
  h->failures++;
  pthread_mutex_unlock(&h->mu);
  if (first) {
    kt_metric_inc(h->m_outages, (const char *const[]){h->backend});
    kt_warn("kv: %s %s unavailable (%s: %s); callers wait and retry, "
            "further errors are counted in kv_errors_total", h->backend,
            h->where, op, why);
  }
}

void kt__kv_ok(struct kt_kv_health *h)
{
  /* the common case, without the lock: every call ends here */
  if (!__atomic_load_n(&h->down, __ATOMIC_ACQUIRE))
    return;
  pthread_mutex_lock(&h->mu);
  int was_down = h->down;
  long n = h->failures;
  __atomic_store_n(&h->down, 0, __ATOMIC_RELEASE);
  h->failures = 0;
  pthread_mutex_unlock(&h->mu);
  if (was_down)
    kt_info("kv: %s %s is back after %ld failed calls", h->backend, h->where,
            n);
}

void kt_kv_free(struct kt_kv *kv)
{
  if (!kv)
    return;
  kv->ops->free(kv->impl);
  pthread_mutex_destroy(&kv->health.mu);
  free(kv);
}

int kt_kv_get(struct kt_kv *kv, const char *key, struct kt_kv_val *out)
{
  memset(out, 0, sizeof *out);
  return kv->ops->get(kv->impl, key, out);
}

int kt_kv_put(struct kt_kv *kv, const char *key, const void *data, size_t len,
              int64_t ttl_us, uint64_t *ver)
{
  return kv->ops->put(kv->impl, key, data, len, ttl_us, ver);
}

int kt_kv_create(struct kt_kv *kv, const char *key, const void *data,
                 size_t len, int64_t ttl_us, struct kt_kv_val *out)
{
  memset(out, 0, sizeof *out);
  return kv->ops->create(kv->impl, key, data, len, ttl_us, out);
}

int kt_kv_cas(struct kt_kv *kv, const char *key, uint64_t expect,
              const void *data, size_t len, int64_t ttl_us, uint64_t *ver)
{
  return kv->ops->cas(kv->impl, key, expect, data, len, ttl_us, ver);
}

int kt_kv_del(struct kt_kv *kv, const char *key)
{
  return kv->ops->del(kv->impl, key);
}

static int is_local(const struct kt_kv_choice *c)
{
  return !c || !c->kind || !*c->kind || !strcmp(c->kind, "local");
}

int kt_kv_choice_check(const struct kt_kv_choice *c, const char *flag,
                       char *err, size_t errlen)
{
  if (is_local(c))
    return 0;
  const char *addr = NULL, *what = NULL;
  if (!strcmp(c->kind, "redis")) {
    addr = c->redis_address;
    what = "redis-address";
  } else if (!strcmp(c->kind, "etcd")) {
    addr = c->etcd_endpoints;
    what = "etcd-endpoints";
  } else {
    snprintf(err, errlen, "--%s: unknown backend %s (local, redis or etcd)",
             flag, c->kind);
    return -EINVAL;
  }
  if (!addr || !*addr) {
    snprintf(err, errlen, "--%s=%s needs --%s-%s", flag, c->kind, flag, what);
    return -EINVAL;
  }
  return 0;
}

int kt_kv_open_choice(const struct kt_kv_choice *c, const char *what,
                      struct kt_kv **out, const char **prefix)
{
  char err[256];
  *out = NULL;
  if (kt_kv_choice_check(c, "cache", err, sizeof err)) {
    kt_error("%s", err);
    return -EINVAL;
  }
  if (is_local(c))
    return 0;
  struct kt_kv_opts o = {.dial_timeout_us = c->dial_timeout_us};
  int redis = !strcmp(c->kind, "redis");
  o.address = redis ? c->redis_address : c->etcd_endpoints;
  *prefix = (redis ? c->redis_prefix : c->etcd_prefix);
  if (!*prefix)
    *prefix = "";
  int rc = redis ? kt_kv_redis_new(&o, out) : kt_kv_etcd_new(&o, out);
  if (!rc)
    kt_info("%s: %s %s, keys under %s", what, (*out)->health.backend,
            (*out)->health.where, *prefix);
  return rc;
}
