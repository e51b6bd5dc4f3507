/* kt_kv_etcd: the etcd v3 backend of kt_kv, through the JSON gateway
 * (/v3/kv/range, /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange,
 * /v3/lease/grant) with libcurl and cJSON.
 *
 * Gateway rules (measured on etcd 3.4, dependencies.md): keys and values
 * are base64; int64s come back as strings; zero and false fields are
 * omitted, so a failed txn has no "succeeded" and an empty range no "kvs".
 *
 * Versions are mod_revisions: create-if-absent is a txn comparing
 * create_revision with 0, compare-and-set one comparing mod_revision.
 *
 * TTLs are leases. The original grants one lease per write; here a lease
 * is shared by the writes of one TTL bucket: a lease for TTL t is granted
 * with t + t/10 (at least 1 s more) and reused for t/10, so every key
 * lives between t and t + t/10 and a busy process grants a few leases a
 * minute instead of one per write.
 *
 * Endpoints: a comma list; a call that cannot reach one (or gets a 5xx,
 * 408 or 429: no leader, shutting down, overloaded) moves on to the next, and the one that answered is
 * tried first next time. curl handles are pooled (keep-alive). */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/kt_log.h"
#include "core/kt_time.h"
#include "kv/kt_kv.h"

#define MAX_ENDPOINTS 8
#define MAX_IDLE 32
#define NLEASES 8
#define MAX_RESPONSE (64u << 20)

struct econn {
  CURL *c;
  struct econn *next;
};

struct lease {
  int64_t ttl_s, id, reuse_until_us; /* mono */
};

struct etcd {
  char *eps[MAX_ENDPOINTS];
  int neps;
  atomic_int cur;
  long dial_ms, op_ms;
  struct curl_slist *hdrs;
  pthread_mutex_t mu;
  struct econn *idle;
  int nidle;
  struct lease leases[NLEASES];
  struct kt_kv_health *h;
};

/* ---- base64 (binary-safe; the core helpers decode text only) -------- */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const void *in, size_t n)
{
  const unsigned char *p = in;
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n)
      v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    *o++ = b64[v >> 18 & 63];
    *o++ = b64[v >> 12 & 63];
    *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? b64[v & 63] : '=';
  }
  *o = 0;
  return out;
}

static int b64_val(int c)
{
  const char *p = c ? strchr(b64, c) : NULL;
  return p ? (int)(p - b64) : -1;
}

/* Into a malloc'd buffer with a NUL after the data; -EPROTO if malformed. */
static int b64_decode(const char *in, char **out, size_t *len)
{
  size_t n = strlen(in), o = 0;
  char *buf = malloc(n / 4 * 3 + 4);
  unsigned acc = 0;
  int bits = 0;
  if (!buf)
    return -ENOMEM;
  for (size_t i = 0; i < n && in[i] != '='; i++) {
    int v = b64_val((unsigned char)in[i]);
    if (v < 0) {
      free(buf);
      return -EPROTO;
    }
    acc = acc << 6 | (unsigned)v;
    if ((bits += 6) >= 8) {
      bits -= 8;
      buf[o++] = (char)(acc >> bits & 0xff);
    }
  }
  buf[o] = 0;
  *out = buf;
  *len = o;
  return 0;
}

/* ---- HTTP -------------------------------------------------------------- */

struct body {
  char *p;
  size_t n, cap;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
  struct body *b = ud;
  size_t n = sz * nm;
  if (b->n + n + 1 > MAX_RESPONSE)
    return 0;
  if (b->n + n + 1 > b->cap) {
    size_t cap = (b->n + n + 1) * 2;
    char *p = realloc(b->p, cap);
    if (!p)
      return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  b->p[b->n] = 0;
  return n;
}

static struct econn *take(struct etcd *e)
{
  pthread_mutex_lock(&e->mu);
  struct econn *c = e->idle;
  if (c) {
    e->idle = c->next;
    e->nidle--;
  }
  pthread_mutex_unlock(&e->mu);
  if (c)
    return c;
  c = calloc(1, sizeof *c);
  if (c && !(c->c = curl_easy_init())) {
    free(c);
    c = NULL;
  }
  return c;
}

static void give(struct etcd *e, struct econn *c)
{
  pthread_mutex_lock(&e->mu);
  if (e->nidle < MAX_IDLE) {
    c->next = e->idle;
    e->idle = c;
    e->nidle++;
    c = NULL;
  }
  pthread_mutex_unlock(&e->mu);
  if (c) {
    curl_easy_cleanup(c->c);
    free(c);
  }
}

/* One POST to one endpoint: 0 and the HTTP status, or -EIO (why set). */
static int post_one(struct etcd *e, CURL *c, const char *ep, const char *path,
                    const char *req, struct body *b, long *status,
                    char *why, size_t wl)
{
  char url[1024];
  snprintf(url, sizeof url, "%s%s", ep, path);
  b->n = 0;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->hdrs);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, e->dial_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, e->op_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  CURLcode cc = curl_easy_perform(c);
  if (cc != CURLE_OK) {
    snprintf(why, wl, "%s: %s", ep, curl_easy_strerror(cc));
    return -EIO;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  /* 5xx: unavailable, no leader, timed out; 408: the gateway's own gRPC
   * connection closing (etcd shutting down); 429: too many requests. */
  if (*status >= 500 || *status == 408 || *status == 429) {
    snprintf(why, wl, "%s: HTTP %ld %.200s", ep, *status, b->p ? b->p : "");
    return -EIO;
  }
  return 0;
}

/* POSTs req to path on the first endpoint that answers. 0 and the parsed
 * answer (*status 200), 0 and the parsed error body (other 4xx), or -EIO
 * when no endpoint answered. */
static int call(struct etcd *e, const char *op, const char *path,
                cJSON *req_json, cJSON **resp, long *status)
{
  char why[512] = "no endpoint";
  char *req = cJSON_PrintUnformatted(req_json);
  struct econn *c = take(e);
  struct body b = {0};
  int rc = -ENOMEM;
  *resp = NULL;
  if (!req || !c)
    goto out;
  int first = atomic_load(&e->cur);
  rc = -EIO;
  for (int i = 0; i < e->neps && rc == -EIO; i++) {
    int k = (first + i) % e->neps;
    rc = post_one(e, c->c, e->eps[k], path, req, &b, status, why, sizeof why);
    if (!rc)
      atomic_store(&e->cur, k);
  }
  if (rc) {
    kt__kv_failed(e->h, op, why);
    goto out;
  }
  kt__kv_ok(e->h);
  *resp = b.p ? cJSON_ParseWithLength(b.p, b.n) : NULL;
  if (!*resp) {
    kt_error("kv: etcd %s: unparsable answer (HTTP %ld)", op, *status);
    rc = -EPROTO;
  }
out:
  free(req);
  free(b.p);
  if (c)
    give(e, c);
  return rc;
}

/* ---- JSON helpers ------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An int64 field: a string on output; absent = 0. */
static int64_t jint(const cJSON *o, const char *k)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (cJSON_IsString(v))
    return strtoll(v->valuestring, NULL, 10);
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static void add_i64(cJSON *o, const char *k, int64_t v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  cJSON_AddStringToObject(o, k, buf);
}

static int add_b64(cJSON *o, const char *k, const void *d, size_t n)
{
  char *s = b64_encode(d, n);
  if (!s)
    return -ENOMEM;
  cJSON_AddStringToObject(o, k, s);
  free(s);
  return 0;
}

static int64_t header_rev(const cJSON *resp)
{
  return jint(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
}

/* A 4xx answer: the gateway's {"error":..,"message":..,"code":n}. */
static int api_error(const char *op, const cJSON *resp, long status)
{
  const char *m = jstr(resp, "message");
  kt_error("kv: etcd %s: HTTP %ld: %s", op, status, m ? m : "(no message)");
  return -EPROTO;
}

static int kv_of(const cJSON *kv, struct kt_kv_val *out)
{
  const char *v = jstr(kv, "value");
  int rc = b64_decode(v ? v : "", &out->data, &out->len);
  out->ver = (uint64_t)jint(kv, "mod_revision");
  return rc;
}

/* ---- leases ------------------------------------------------------------ */

static int64_t cached_lease(struct etcd *e, int64_t ttl_s)
{
  int64_t now = kt_mono_us(), id = 0;
  pthread_mutex_lock(&e->mu);
  for (int i = 0; i < NLEASES; i++)
    if (e->leases[i].ttl_s == ttl_s && e->leases[i].reuse_until_us > now)
      id = e->leases[i].id;
  pthread_mutex_unlock(&e->mu);
  return id;
}

static void remember_lease(struct etcd *e, int64_t ttl_s, int64_t id,
                           int64_t reuse_us)
{
  int64_t now = kt_mono_us();
  pthread_mutex_lock(&e->mu);
  int slot = 0;
  for (int i = 0; i < NLEASES; i++) {
    if (e->leases[i].ttl_s == ttl_s || e->leases[i].reuse_until_us <= now) {
      slot = i;
      break;
    }
    if (e->leases[i].reuse_until_us < e->leases[slot].reuse_until_us)
      slot = i;
  }
  e->leases[slot] = (struct lease){ttl_s, id, now + reuse_us};
  pthread_mutex_unlock(&e->mu);
}

static void forget_leases(struct etcd *e)
{
  pthread_mutex_lock(&e->mu);
  memset(e->leases, 0, sizeof e->leases);
  pthread_mutex_unlock(&e->mu);
}

/* The lease for a TTL: 0 and *id (0 when ttl_us is 0: no lease). */
static int lease_for(struct etcd *e, const char *op, int64_t ttl_us,
                     int64_t *id)
{
  *id = 0;
  if (ttl_us <= 0)
    return 0;
  int64_t ttl_s = (ttl_us + 999999) / 1000000;
  if ((*id = cached_lease(e, ttl_s)))
    return 0;
  int64_t slack = ttl_s / 10 > 1 ? ttl_s / 10 : 1;
  cJSON *req = cJSON_CreateObject(), *resp;
  long status;
  add_i64(req, "TTL", ttl_s + slack);
  int rc = call(e, op, "/v3/lease/grant", req, &resp, &status);
  cJSON_Delete(req);
  if (rc)
    return rc;
  *id = jint(resp, "ID");
  if (status != 200 || !*id)
    rc = api_error(op, resp, status);
  else
    remember_lease(e, ttl_s, *id, slack * 1000000);
  cJSON_Delete(resp);
  return rc;
}

/* A put request {key, value, lease?} for txn or plain put. */
static cJSON *put_req(const char *key, const void *data, size_t len,
                      int64_t lease)
{
  cJSON *p = cJSON_CreateObject();
  if (!p || add_b64(p, "key", key, strlen(key)) ||
      add_b64(p, "value", data, len)) {
    cJSON_Delete(p);
    return NULL;
  }
  if (lease)
    add_i64(p, "lease", lease);
  return p;
}

static int lease_gone(const cJSON *resp, long status)
{
  const char *m = jstr(resp, "message");
  return status != 200 && m && strstr(m, "lease not found");
}

/* Runs a write (plain put or txn built by mk with the lease) and retries
 * once with a fresh lease when the cached one is gone (revoked, or
 * expired while etcd was down). */
static int write_with_lease(struct etcd *e, const char *op, const char *path,
                            cJSON *(*mk)(void *ud, int64_t lease), void *ud,
                            int64_t ttl_us, cJSON **resp)
{
  for (int attempt = 0;; attempt++) {
    int64_t lease;
    long status;
    int rc = lease_for(e, op, ttl_us, &lease);
    if (rc)
      return rc;
    cJSON *req = mk(ud, lease);
    if (!req)
      return -ENOMEM;
    rc = call(e, op, path, req, resp, &status);
    cJSON_Delete(req);
    if (rc)
      return rc;
    if (status == 200)
      return 0;
    if (!attempt && lease_gone(*resp, status)) {
      cJSON_Delete(*resp);
      forget_leases(e);
      continue;
    }
    rc = api_error(op, *resp, status);
    cJSON_Delete(*resp);
    *resp = NULL;
    return rc;
  }
}

/* ---- operations -------------------------------------------------------- */

struct wr {
  const char *key;
  const void *data;
  size_t len;
  const char *target; /* txn compare: "CREATE" or "MOD"; NULL = plain put */
  int64_t expect;
};

static cJSON *mk_put(void *ud, int64_t lease)
{
  struct wr *w = ud;
  return put_req(w->key, w->data, w->len, lease);
}

/* if <target>_revision(key) == expect then put else range(key) */
static cJSON *mk_txn(void *ud, int64_t lease)
{
  struct wr *w = ud;
  cJSON *t = cJSON_CreateObject(), *cmp = cJSON_CreateObject();
  cJSON *put = put_req(w->key, w->data, w->len, lease);
  cJSON *rng = cJSON_CreateObject(), *succ = cJSON_CreateObject();
  cJSON *fail = cJSON_CreateObject();
  if (!t || !cmp || !put || !rng || !succ || !fail ||
      add_b64(cmp, "key", w->key, strlen(w->key)) ||
      add_b64(rng, "key", w->key, strlen(w->key))) {
    cJSON_Delete(t);
    cJSON_Delete(cmp);
    cJSON_Delete(put);
    cJSON_Delete(rng);
    cJSON_Delete(succ);
    cJSON_Delete(fail);
    return NULL;
  }
  cJSON_AddStringToObject(cmp, "target", w->target);
  cJSON_AddStringToObject(cmp, "result", "EQUAL");
  add_i64(cmp, strcmp(w->target, "CREATE") ? "mod_revision" : "create_revision",
          w->expect);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(t, "compare"), cmp);
  cJSON_AddItemToObject(succ, "request_put", put);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(t, "success"), succ);
  cJSON_AddItemToObject(fail, "request_range", rng);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(t, "failure"), fail);
  return t;
}

static int e_get(void *impl, const char *key, struct kt_kv_val *out)
{
  struct etcd *e = impl;
  cJSON *req = cJSON_CreateObject(), *resp;
  long status;
  if (add_b64(req, "key", key, strlen(key))) {
    cJSON_Delete(req);
    return -ENOMEM;
  }
  int rc = call(e, "get", "/v3/kv/range", req, &resp, &status);
  cJSON_Delete(req);
  if (rc)
    return rc;
  const cJSON *kv = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(resp, "kvs"), 0);
  if (status != 200)
    rc = api_error("get", resp, status);
  else
    rc = kv ? kv_of(kv, out) : -ENOENT;
  cJSON_Delete(resp);
  return rc;
}

static int e_put(void *impl, const char *key, const void *data, size_t len,
                 int64_t ttl_us, uint64_t *ver)
{
  struct wr w = {key, data, len, NULL, 0};
  cJSON *resp;
  int rc = write_with_lease(impl, "put", "/v3/kv/put", mk_put, &w, ttl_us,
                            &resp);
  if (rc)
    return rc;
  if (ver)
    *ver = (uint64_t)header_rev(resp);
  cJSON_Delete(resp);
  return 0;
}

/* A txn: 0 when it succeeded (*rev = its revision), else the current kv
 * from the failure branch in *cur (NULL when absent). */
static int txn(struct etcd *e, const char *op, struct wr *w, int64_t ttl_us,
               int64_t *rev, cJSON **resp, const cJSON **cur)
{
  int rc = write_with_lease(e, op, "/v3/kv/txn", mk_txn, w, ttl_us, resp);
  if (rc)
    return rc;
  *rev = header_rev(*resp);
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*resp, "succeeded")))
    return 0;
  const cJSON *r0 = cJSON_GetArrayItem(
      cJSON_GetObjectItemCaseSensitive(*resp, "responses"), 0);
  const cJSON *rr = cJSON_GetObjectItemCaseSensitive(r0, "response_range");
  *cur = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rr, "kvs"), 0);
  return 1;
}

static int e_create(void *impl, const char *key, const void *data, size_t len,
                    int64_t ttl_us, struct kt_kv_val *out)
{
  struct wr w = {key, data, len, "CREATE", 0};
  cJSON *resp;
  const cJSON *cur = NULL;
  int64_t rev;
  int rc = txn(impl, "create", &w, ttl_us, &rev, &resp, &cur);
  if (rc < 0)
    return rc;
  if (rc == 0)
    out->ver = (uint64_t)rev;
  else if (!cur) /* the compare and the range run at one revision */
    rc = -EPROTO;
  else
    rc = kv_of(cur, out) ? -ENOMEM : -EEXIST;
  cJSON_Delete(resp);
  return rc;
}

static int e_cas(void *impl, const char *key, uint64_t expect,
                 const void *data, size_t len, int64_t ttl_us, uint64_t *ver)
{
  struct wr w = {key, data, len, "MOD", (int64_t)expect};
  cJSON *resp;
  const cJSON *cur = NULL;
  int64_t rev;
  int rc = txn(impl, "cas", &w, ttl_us, &rev, &resp, &cur);
  if (rc < 0)
    return rc;
  cJSON_Delete(resp);
  if (rc)
    return -ESTALE;
  if (ver)
    *ver = (uint64_t)rev;
  return 0;
}

static int e_del(void *impl, const char *key)
{
  cJSON *req = cJSON_CreateObject(), *resp;
  long status;
  if (add_b64(req, "key", key, strlen(key))) {
    cJSON_Delete(req);
    return -ENOMEM;
  }
  int rc = call(impl, "del", "/v3/kv/deleterange", req, &resp, &status);
  cJSON_Delete(req);
  if (rc)
    return rc;
  if (status != 200)
    rc = api_error("del", resp, status);
  cJSON_Delete(resp);
  return rc;
}

static void e_free(void *impl)
{
  struct etcd *e = impl;
  for (struct econn *c = e->idle, *n; c; c = n) {
    n = c->next;
    curl_easy_cleanup(c->c);
    free(c);
  }
  for (int i = 0; i < e->neps; i++)
    free(e->eps[i]);
  curl_slist_free_all(e->hdrs);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static const struct kt_kv_ops etcd_ops = {e_get, e_put, e_create, e_cas,
                                          e_del, e_free};

/* "a,b,c": each http(s)://host:port, or host:port (http assumed, as the
 * Go client does). Trailing slashes dropped. */
static int parse_endpoints(struct etcd *e, const char *list)
{
  char *copy = strdup(list), *save = NULL;
  if (!copy)
    return -ENOMEM;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ')
      t++;
    if (!*t)
      continue;
    if (e->neps == MAX_ENDPOINTS)
      break;
    size_t n = strlen(t) + 8;
    char *ep = malloc(n);
    if (!ep)
      break;
    snprintf(ep, n, "%s%s", strstr(t, "://") ? "" : "http://", t);
    while (strlen(ep) > 8 && ep[strlen(ep) - 1] == '/')
      ep[strlen(ep) - 1] = 0;
    e->eps[e->neps++] = ep;
  }
  free(copy);
  return e->neps ? 0 : -EINVAL;
}

int kt_kv_etcd_new(const struct kt_kv_opts *o, struct kt_kv **out)
{
  struct kt_kv *kv = calloc(1, sizeof *kv);
  struct etcd *e = calloc(1, sizeof *e);
  if (!kv || !e) {
    free(kv);
    free(e);
    return -ENOMEM;
  }
  pthread_mutex_init(&e->mu, NULL);
  if (!o->address || parse_endpoints(e, o->address)) {
    kt_error("kv: invalid etcd endpoints '%s'", o->address ? o->address : "");
    e_free(e);
    free(kv);
    return -EINVAL;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
  e->dial_ms = (long)((o->dial_timeout_us > 0 ? o->dial_timeout_us : 10000000) / 1000);
  e->op_ms = (long)((o->op_timeout_us > 0 ? o->op_timeout_us : 5000000) / 1000);
  if (e->op_ms < e->dial_ms)
    e->op_ms = e->dial_ms + e->op_ms;
  kt__kv_init(kv, "etcd", o->address);
  e->h = &kv->health;
  kv->ops = &etcd_ops;
  kv->impl = e;
  *out = kv;
  return 0;
}
