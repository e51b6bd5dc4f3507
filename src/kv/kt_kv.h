/* kt_kv: a small key-value client over a shared engine, so that several
 * kelemetry processes share the span cache, the diff (patch) cache and the
 * trace cache (behaviour spec §1.7.2, §1.8, §2.9). Two backends:
 *
 *   redis  hiredis 0.14, a small connection pool; every key is a hash
 *          {v: value, rev: version}; writes are Lua scripts (EVALSHA),
 *          TTLs are PEXPIRE.
 *   etcd   v3.4 through its JSON gateway (/v3/) with libcurl; versions are
 *          mod_revisions, TTLs are leases (one per TTL bucket, reused).
 *
 * Values are bytes (not necessarily text); a value handed out always has a
 * NUL after its last byte so text callers can use it as a string.
 *
 * Errors: 0, or a negative errno code:
 *   -ENOENT  no such key (or expired)
 *   -EEXIST  create: the key exists (its value is handed out)
 *   -ESTALE  cas: the version did not match (or the key is gone)
 *   -EIO     the engine cannot be reached or failed: retry later. An
 *            outage is logged once when it starts and once when it ends,
 *            and every failed call counts in kv_errors_total{backend,op}.
 *   -EINVAL / -ENOMEM as usual.
 * Every function is thread-safe. */
#ifndef KT_KV_H
#define KT_KV_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct kt_metric;

/* A value read from the engine; data is malloc'd (kt_kv_val_free). */
struct kt_kv_val {
  char *data;
  size_t len;
  uint64_t ver; /* never 0 for a stored value */
};
void kt_kv_val_free(struct kt_kv_val *v);

struct kt_kv_ops {
  int (*get)(void *impl, const char *key, struct kt_kv_val *out);
  /* Sets the value, whatever was there; *ver (if ver) the new version. */
  int (*put)(void *impl, const char *key, const void *data, size_t len,
             int64_t ttl_us, uint64_t *ver);
  /* Sets the value only if the key is absent: 0 and out->ver (out->data
   * NULL), or -EEXIST and out = the current value. */
  int (*create)(void *impl, const char *key, const void *data, size_t len,
                int64_t ttl_us, struct kt_kv_val *out);
  /* Sets the value only if the key's version is still expect. */
  int (*cas)(void *impl, const char *key, uint64_t expect, const void *data,
             size_t len, int64_t ttl_us, uint64_t *ver);
  int (*del)(void *impl, const char *key); /* absent is not an error */
  void (*free)(void *impl);
};

/* Outage bookkeeping shared by the backends (see kt_kv.c). */
struct kt_kv_health {
  pthread_mutex_t mu;
  int down;
  long failures; /* failed calls in the current outage */
  const char *backend;
  char where[256];
  struct kt_metric *m_errors, *m_outages;
};

struct kt_kv {
  const struct kt_kv_ops *ops;
  void *impl;
  struct kt_kv_health health;
};

/* ttl_us 0 = never expires (no TTL anywhere in this API means "forever").
 * The engine is not contacted here: a process may start before it. */
struct kt_kv_opts {
  const char *address;     /* redis "host:port"; etcd "url[,url...]" */
  int64_t dial_timeout_us; /* 0 = 10s */
  int64_t op_timeout_us;   /* 0 = 5s */
  int max_conns;           /* 0 = 16 */
};
int kt_kv_redis_new(const struct kt_kv_opts *o, struct kt_kv **out);
int kt_kv_etcd_new(const struct kt_kv_opts *o, struct kt_kv **out);
void kt_kv_free(struct kt_kv *kv);

int kt_kv_get(struct kt_kv *kv, const char *key, struct kt_kv_val *out);
int kt_kv_put(struct kt_kv *kv, const char *key, const void *data, size_t len,
              int64_t ttl_us, uint64_t *ver);
int kt_kv_create(struct kt_kv *kv, const char *key, const void *data,
                 size_t len, int64_t ttl_us, struct kt_kv_val *out);
int kt_kv_cas(struct kt_kv *kv, const char *key, uint64_t expect,
              const void *data, size_t len, int64_t ttl_us, uint64_t *ver);
int kt_kv_del(struct kt_kv *kv, const char *key);

/* Which backend a cache uses, as the --<cache>=local|redis|etcd flags and
 * their address / prefix flags say. Strings are borrowed. */
struct kt_kv_choice {
  const char *kind; /* "local" (or NULL / ""), "redis", "etcd" */
  const char *redis_address, *redis_prefix;
  const char *etcd_endpoints, *etcd_prefix;
  int64_t dial_timeout_us;
};
/* Whether the choice names a known backend with an address; flag is the
 * selector's name for the message. 0 or -EINVAL with err filled. */
int kt_kv_choice_check(const struct kt_kv_choice *c, const char *flag,
                       char *err, size_t errlen);
/* Opens the chosen backend for the cache named what ("span cache"): 0 and
 * *out NULL for local, 0 and *out with *prefix (borrowed from c) for
 * redis/etcd (logged with where the keys go), or -EINVAL (logged). */
int kt_kv_open_choice(const struct kt_kv_choice *c, const char *what,
                      struct kt_kv **out, const char **prefix);

/* For the backends only: a call failed because of the engine (why is a
 * short reason), or succeeded. */
void kt__kv_failed(struct kt_kv_health *h, const char *op, const char *why);
void kt__kv_ok(struct kt_kv_health *h);
int kt__kv_init(struct kt_kv *kv, const char *backend, const char *where);

#endif
