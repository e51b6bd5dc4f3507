/* kt_http: see kt_http.h. libmicrohttpd with its internal thread pool and
 * epoll. Bodies are accumulated per connection into a buffer that grows
 * up to the server's body limit; past it the request is answered 413
 * without reading further. */
#include "http/kt_http.h"
#include "core/kt_url.h"

#include <netinet/in.h> /* microhttpd.h needs it and does not include it */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "http/kt_auth.h"

#define MAX_DAEMONS 16
#define DRAIN_MS 3000 /* how long stop waits for requests being handled */

struct kt_http {
  struct MHD_Daemon *d[MAX_DAEMONS];
  unsigned nd;
  struct kt_http_opts o;
  const struct kt_http_route *routes;
  size_t nroutes;
  struct kt_metric *m_req, *m_denied;
  char *pem[3]; /* cert, key, client CA: MHD keeps pointers to them */
  atomic_int active; /* requests begun and not yet completed */
};

struct conn_state {
  char *buf;
  size_t len, cap;
  int too_big;
  int denied; /* 401 or 403, decided on the headers */
};

/* ---- requests without a connection: a decoded raw query ---------------- */

#define OFFLINE_ARGS 64

/* Decoded again at every call: the same query lands at the same places,
 * so values returned earlier in a handler stay valid. */
static __thread struct {
  char buf[16384];
  const char *key[OFFLINE_ARGS], *val[OFFLINE_ARGS];
  int n;
} offline;

/* Unescapes [s, end) into *o (bounded by lim), advancing it; returns the
 * start. */
static char *decode_into(const char *s, const char *end, char **o, char *lim)
{
  static char empty[1];
  char *start = *o;
  if (start >= lim)
    return empty; /* the buffer is full: the value reads as "" */
  long n = kt_url_unescape(s, end, start, (size_t)(lim - start), 0);
  *o += (size_t)n + 1 < (size_t)(lim - start) ? (size_t)n + 1 : (size_t)(lim - start);
  return start;
}

static void offline_decode(const char *q)
{
  offline.n = 0;
  char *o = offline.buf, *lim = offline.buf + sizeof offline.buf;
  for (const char *p = q ? q : ""; *p && offline.n < OFFLINE_ARGS && lim - o > 4;) {
    const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    offline.key[offline.n] = decode_into(p, eq ? eq : end, &o, lim);
    offline.val[offline.n] = decode_into(eq ? eq + 1 : end, end, &o, lim);
    offline.n++;
    p = amp ? amp + 1 : end;
  }
}

const char *kt_http_query(const struct kt_http_req *req, const char *key)
{
  if (req->_conn)
    return MHD_lookup_connection_value(req->_conn, MHD_GET_ARGUMENT_KIND, key);
  offline_decode(req->raw_query);
  for (int i = 0; i < offline.n; i++)
    if (!strcmp(offline.key[i], key))
      return offline.val[i];
  return NULL;
}

struct query_all {
  const char *key;
  void (*fn)(const char *value, void *ud);
  void *ud;
};

static enum MHD_Result each_arg(void *cls, enum MHD_ValueKind kind,
                                const char *key, const char *value)
{
  struct query_all *qa = cls;
  if (key && strcmp(key, qa->key) == 0)
    qa->fn(value ? value : "", qa->ud);
  return MHD_YES;
}

void kt_http_query_all(const struct kt_http_req *req, const char *key,
                       void (*fn)(const char *value, void *ud), void *ud)
{
  struct query_all qa = {key, fn, ud};
  if (!req->_conn) {
    offline_decode(req->raw_query);
    for (int i = 0; i < offline.n; i++)
      each_arg(&qa, MHD_GET_ARGUMENT_KIND, offline.key[i], offline.val[i]);
    return;
  }
  MHD_get_connection_values(req->_conn, MHD_GET_ARGUMENT_KIND, each_arg, &qa);
}

struct raw_query {
  char *buf;
  size_t len, cap;
};

static void append_raw(struct raw_query *q, const char *s)
{
  size_t n = strlen(s);
  if (q->len + n + 1 > q->cap)
    return;
  memcpy(q->buf + q->len, s, n);
  q->len += n;
  q->buf[q->len] = 0;
}

/* Re-encodes one decoded value (RFC 3986 unreserved kept). */
static void append_encoded(struct raw_query *q, const char *s)
{
  static const char hx[] = "0123456789ABCDEF";
  for (; *s && q->len + 4 < q->cap; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr("-._~", c)) {
      q->buf[q->len++] = (char)c;
    } else {
      q->buf[q->len++] = '%';
      q->buf[q->len++] = hx[c >> 4];
      q->buf[q->len++] = hx[c & 15];
    }
  }
  q->buf[q->len] = 0;
}

static enum MHD_Result raw_arg(void *cls, enum MHD_ValueKind kind,
                               const char *key, const char *value)
{
  struct raw_query *q = cls;
  if (q->len)
    append_raw(q, "&");
  append_encoded(q, key);
  if (value) {
    append_raw(q, "=");
    append_encoded(q, value);
  }
  return MHD_YES;
}

/* Thread-local so that ":query" can return a pointer valid for the
 * duration of the handler call. */
static __thread char query_buf[16384];

const char *kt_http_header(const struct kt_http_req *req, const char *name)
{
  if (!req->_conn)
    return strcmp(name, ":query") == 0 ? (req->raw_query ? req->raw_query : "") : NULL;
  if (strcmp(name, ":query") == 0) {
    struct raw_query q = {query_buf, 0, sizeof query_buf};
    query_buf[0] = 0;
    MHD_get_connection_values(req->_conn, MHD_GET_ARGUMENT_KIND, raw_arg, &q);
    return query_buf;
  }
  return MHD_lookup_connection_value(req->_conn, MHD_HEADER_KIND, name);
}

void kt_http_set_body(struct kt_http_resp *resp, int status,
                      const char *content_type, char *body, size_t len)
{
  free(resp->body);
  resp->status = status;
  resp->content_type = content_type;
  resp->body = body;
  resp->len = len;
}

void kt_http_error(struct kt_http_resp *resp, int status, const char *msg)
{
  size_t cap = strlen(msg) * 6 + 32, n = 0;
  char *b = malloc(cap);
  if (!b) {
    resp->status = status;
    return;
  }
  n += (size_t)snprintf(b, cap, "{\"error\":\"");
  for (const char *p = msg; *p && n + 8 < cap; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      n += (size_t)snprintf(b + n, cap - n, "\\%c", c);
    else if (c < 0x20)
      n += (size_t)snprintf(b + n, cap - n, "\\u%04x", c);
    else
      b[n++] = (char)c;
  }
  n += (size_t)snprintf(b + n, cap - n, "\"}");
  kt_http_set_body(resp, status, "application/json", b, n);
}

static int route_matches(const struct kt_http_route *r, const char *method,
                         const char *path)
{
  if (r->method && strcmp(r->method, method) != 0)
    return 0;
  size_t n = strlen(r->prefix);
  if (n && (r->prefix[n - 1] == '/' || r->prefix[n - 1] == '*'))
    return strncmp(path, r->prefix, r->prefix[n - 1] == '*' ? n - 1 : n) == 0;
  return strcmp(path, r->prefix) == 0;
}

static void client_ip(struct MHD_Connection *conn, char *buf, size_t len)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  buf[0] = 0;
  if (!ci || !ci->client_addr)
    return;
  const struct sockaddr *sa = ci->client_addr;
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
              (socklen_t)len);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
              (socklen_t)len);
}

static enum MHD_Result send_resp(struct kt_http *h,
                                 struct MHD_Connection *conn,
                                 struct kt_http_resp *r, const char *method)
{
  struct MHD_Response *mr;
  if (r->static_body)
    mr = MHD_create_response_from_buffer(r->len, (void *)r->static_body,
                                         MHD_RESPMEM_PERSISTENT);
  else
    mr = MHD_create_response_from_buffer(r->body ? r->len : 0,
                                         r->body ? r->body : (void *)"",
                                         r->body ? MHD_RESPMEM_MUST_FREE
                                                 : MHD_RESPMEM_PERSISTENT);
  if (!mr) {
    free(r->body);
    return MHD_NO;
  }
  MHD_add_response_header(mr, "Content-Type",
                          r->content_type ? r->content_type : "application/json");
  if (r->location[0])
    MHD_add_response_header(mr, "Location", r->location);
  if (r->status == 401)
    MHD_add_response_header(mr, "WWW-Authenticate",
                            h->o.auth && h->o.auth->basic
                                ? "Basic realm=\"kelemetry\"" : "Bearer");
  if (r->cache_control)
    MHD_add_response_header(mr, "Cache-Control", r->cache_control);
  if (r->retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after);
    MHD_add_response_header(mr, "Retry-After", ra);
  }
  char code[8];
  snprintf(code, sizeof code, "%d", r->status);
  kt_metric_inc(h->m_req, (const char *const[]){h->o.name, method, code});
  enum MHD_Result rc = MHD_queue_response(conn, (unsigned)r->status, mr);
  MHD_destroy_response(mr);
  return rc;
}

static enum MHD_Result dispatch(struct kt_http *h, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                struct conn_state *st)
{
  struct kt_http_resp r = {.status = 404};
  char ip[64];
  if (st->denied) {
    kt_http_error(&r, st->denied, st->denied == 401 ? "authentication required"
                                                     : "client certificate not accepted");
    if (st->denied == 401 && h->o.auth && h->o.auth->basic)
      r.cache_control = "no-store";
    return send_resp(h, conn, &r, method);
  }
  if (st->too_big) {
    kt_http_error(&r, 413, "request body too large");
    return send_resp(h, conn, &r, method);
  }
  client_ip(conn, ip, sizeof ip);
  struct kt_http_req req = {method, url, st->buf ? st->buf : "", st->len, ip,
                            conn, NULL};
  for (size_t i = 0; i < h->nroutes; i++) {
    if (!route_matches(&h->routes[i], method, url))
      continue;
    if (h->routes[i].fn(h->routes[i].ud, &req, &r) == 0)
      return send_resp(h, conn, &r, method);
  }
  kt_http_error(&r, 404, "no such endpoint");
  return send_resp(h, conn, &r, method);
}

/* One request body buffer kept per server thread for the next request:
 * a fresh ~500 KB buffer per webhook batch cost page faults on every
 * page (a quarter of the thread's CPU). Bounded by SPARE_MAX. */
#define SPARE_MAX ((size_t)16 << 20)
static _Thread_local char *t_spare;
static _Thread_local size_t t_spare_cap;
static pthread_key_t spare_key; /* frees a thread's spare when it exits */
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void make_spare_key(void)
{
  pthread_key_create(&spare_key, free);
}

static void take_spare(struct conn_state *st, size_t need)
{
  if (!st->buf && t_spare && t_spare_cap >= need) {
    st->buf = t_spare;
    st->cap = t_spare_cap;
    t_spare = NULL;
    pthread_setspecific(spare_key, NULL);
  }
}

static void release_body(struct conn_state *st)
{
  pthread_once(&spare_once, make_spare_key);
  if (st->buf && !t_spare && st->cap <= SPARE_MAX) {
    t_spare = st->buf;
    t_spare_cap = st->cap;
    pthread_setspecific(spare_key, t_spare);
  } else {
    free(st->buf);
  }
}

static int grow_body(struct kt_http *h, struct conn_state *st, size_t add)
{
  if (st->len + add > h->o.body_limit)
    return -E2BIG;
  take_spare(st, st->len + add + 1);
  if (st->len + add + 1 > st->cap) {
    size_t cap = st->cap ? st->cap : 16384;
    while (cap < st->len + add + 1)
      cap *= 2;
    if (cap > h->o.body_limit + 1)
      cap = h->o.body_limit + 1;
    char *b = realloc(st->buf, cap);
    if (!b)
      return -ENOMEM;
    st->buf = b;
    st->cap = cap;
  }
  return 0;
}

/* With a client CA, the TLS layer asked for a certificate; whether one
 * came and chains to the CA is checked here. */
static int client_cert_ok(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  unsigned status = 0, n = 0;
  if (!ci || !ci->tls_session)
    return 0;
  gnutls_session_t s = (gnutls_session_t)ci->tls_session;
  if (!gnutls_certificate_get_peers(s, &n) || n == 0)
    return 0;
  return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* 0 = let the request in, else the HTTP status that refuses it. */
static int admission(struct kt_http *h, struct MHD_Connection *conn)
{
  if (h->o.tls_client_ca && *h->o.tls_client_ca && !client_cert_ok(conn))
    return 403;
  if (h->o.auth && !kt_auth_allows(h->o.auth, MHD_lookup_connection_value(
                                                  conn, MHD_HEADER_KIND, "Authorization")))
    return 401;
  return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
  struct kt_http *h = cls;
  struct conn_state *st = *con_cls;
  if (!st) {
    st = calloc(1, sizeof *st);
    if (!st)
      return MHD_NO;
    *con_cls = st;
    atomic_fetch_add(&h->active, 1);
    st->denied = admission(h, conn);
    if (st->denied) {
      const char *why = st->denied == 401 ? "credentials" : "client_cert";
      kt_metric_inc(h->m_denied, (const char *const[]){h->o.name, why});
      st->too_big = 1; /* read nothing of the body */
      return MHD_YES;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > h->o.body_limit)
      st->too_big = 1;
    else if (cl && grow_body(h, st, strtoull(cl, NULL, 10)))
      st->too_big = 1;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!st->too_big && grow_body(h, st, *upload_size) == 0) {
      memcpy(st->buf + st->len, upload, *upload_size);
      st->len += *upload_size;
      st->buf[st->len] = 0;
    } else {
      st->too_big = 1;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return dispatch(h, conn, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode toe)
{
  struct kt_http *h = cls;
  struct conn_state *st = *con_cls;
  if (st) {
    release_body(st);
    free(st);
    atomic_fetch_sub(&h->active, 1);
  }
  *con_cls = NULL;
}

static int read_pem(const char *path, char **out)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    kt_error("cannot read %s: %s", path, strerror(errno));
    return -errno;
  }
  *out = calloc(1, 1 << 20);
  size_t n = *out ? fread(*out, 1, (1 << 20) - 1, f) : 0;
  fclose(f);
  if (!n || !strstr(*out, "-----BEGIN")) {
    kt_error("%s is not a PEM file", path);
    return -EINVAL;
  }
  return 0;
}

/* SO_REUSEPORT would let a second kelemetry share the port silently: probe
 * with a plain bind first. */
static int port_taken(const struct sockaddr_in *sa)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, taken;
  if (fd < 0)
    return 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  taken = sa->sin_port && bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0;
  close(fd);
  return taken;
}

int kt_http_start(const struct kt_http_opts *o,
                  const struct kt_http_route *routes, size_t nroutes,
                  struct kt_http **out)
{
  struct kt_http *h = calloc(1, sizeof *h);
  if (!h)
    return -ENOMEM;
  h->o = *o;
  if (!h->o.body_limit)
    h->o.body_limit = (size_t)64 << 20;
  if (!h->o.threads)
    h->o.threads = 2;
  if (!h->o.name)
    h->o.name = "http";
  h->routes = routes;
  h->nroutes = nroutes;
  h->m_req = kt_metrics_counter(kt_metrics_default(), "http_requests_total",
      "HTTP requests answered, by server, method and status",
      (const char *const[]){"server", "method", "code", NULL});
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)o->port);
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  if (o->address && *o->address &&
      inet_pton(AF_INET, o->address, &sa.sin_addr) != 1) {
    kt_error("%s: invalid listen address %s", h->o.name, o->address);
    free(h);
    return -EINVAL;
  }
  h->m_denied = kt_metrics_counter(kt_metrics_default(), "http_denied_total",
      "Requests refused before reading them: missing credentials or client certificate",
      (const char *const[]){"server", "reason", NULL});
  int tls = h->o.tls_cert && *h->o.tls_cert && h->o.tls_key && *h->o.tls_key;
  if (tls && (read_pem(h->o.tls_cert, &h->pem[0]) || read_pem(h->o.tls_key, &h->pem[1]) ||
              (h->o.tls_client_ca && *h->o.tls_client_ca &&
               read_pem(h->o.tls_client_ca, &h->pem[2])))) {
    kt_http_stop(h);
    return -EINVAL;
  }
  if (!tls && h->o.tls_client_ca && *h->o.tls_client_ca) {
    kt_error("%s: a client CA needs TLS (certificate and key)", h->o.name);
    kt_http_stop(h);
    return -EINVAL;
  }
  if (port_taken(&sa)) {
    kt_error("%s: cannot listen on %s:%d: port in use", h->o.name,
             o->address && *o->address ? o->address : "0.0.0.0", o->port);
    free(h);
    return -EADDRINUSE;
  }
  struct MHD_OptionItem tls_opts[4];
  size_t nt = 0;
  if (tls) {
    tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->pem[0]};
    tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->pem[1]};
    if (h->pem[2])
      tls_opts[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->pem[2]};
  }
  tls_opts[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  /* One daemon per thread on the same port (SO_REUSEPORT): the kernel
   * spreads connections over them. MHD's own thread pool left all of a
   * client's keep-alive connections on one thread, and request parsing is
   * the webhook's main cost. */
  for (h->nd = 0; h->nd < h->o.threads && h->nd < MAX_DAEMONS; h->nd++) {
    h->d[h->nd] = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
            MHD_USE_ITC | /* quiesce at stop */
            (tls ? MHD_USE_TLS : 0),
        (uint16_t)o->port, NULL, NULL, on_request, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!h->d[h->nd]) {
      kt_error("%s: cannot listen on %s:%d", h->o.name,
               o->address && *o->address ? o->address : "0.0.0.0", o->port);
      kt_http_stop(h);
      return -EADDRINUSE;
    }
  }
  *out = h;
  return 0;
}

void kt_http_stop(struct kt_http *h)
{
  if (!h)
    return;
  /* Stop listening, then let the requests being handled get their answer
   * (a webhook request may wait on the store) before connections close. */
  MHD_socket ls[MAX_DAEMONS];
  for (unsigned i = 0; i < h->nd; i++)
    ls[i] = MHD_quiesce_daemon(h->d[i]);
  for (int ms = 0; atomic_load(&h->active) > 0 && ms < DRAIN_MS; ms += 10)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  for (unsigned i = 0; i < h->nd; i++) {
    MHD_stop_daemon(h->d[i]);
    if (ls[i] != MHD_INVALID_SOCKET) /* ours once quiesced, after the stop */
      close(ls[i]);
  }
  for (int i = 0; i < 3; i++)
    free(h->pem[i]);
  free(h);
}
