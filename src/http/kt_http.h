/* kt_http: the HTTP servers (webhook :8080, query API and UI :16686,
 * metrics :9090), on libmicrohttpd with a thread pool. A server holds a
 * table of routes; a handler receives the whole request (body bounded by
 * the server's limit) and fills a response. */
#ifndef KT_HTTP_H
#define KT_HTTP_H
#include <stddef.h>
#include <stdint.h>

struct kt_http_req {
  const char *method, *path; /* path without the query string */
  const char *body;          /* NUL-terminated; len bytes */
  size_t len;
  const char *client_ip;
  void *_conn; /* for kt_http_query()/kt_http_header() */
  /* Without a connection (tests, fuzzers): the raw query string the
   * kt_http_query functions decode instead. */
  const char *raw_query;
};

struct kt_http_resp {
  int status;
  const char *content_type; /* default application/json */
  char *body;               /* malloc'd, freed by the server */
  size_t len;
  const void *static_body;  /* alternative to body: not freed */
  char location[512];       /* sets Location when non-empty */
  int retry_after;          /* sets Retry-After (seconds) when > 0 */
  const char *cache_control;
};

/* Returns 0 when it handled the request; -ENOENT passes to the next route.*/
typedef int (*kt_http_handler)(void *ud, const struct kt_http_req *req,
                               struct kt_http_resp *resp);

struct kt_http_route {
  const char *method; /* NULL = any */
  const char *prefix; /* path prefix; exact when it does not end in '/' or '*' */
  kt_http_handler fn;
  void *ud;
};

struct kt_auth;

struct kt_http_opts {
  const char *address; /* "" or NULL = all interfaces */
  int port;
  size_t body_limit;    /* 413 above; 0 = 64 MiB */
  unsigned threads;     /* 0 = 2 */
  const char *name;     /* for logs and metrics: webhook, query, metrics */
  /* TLS: PEM files; both cert and key set = HTTPS. With client_ca, a
   * client certificate signed by that CA is required (as the apiserver's
   * webhook kubeconfig presents one). */
  const char *tls_cert, *tls_key, *tls_client_ca;
  const struct kt_auth *auth; /* NULL = open; must outlive the server */
};

struct kt_http;

/* Starts listening. routes (and their ud) must outlive the server.
 * 0, or a negative code with the reason logged (e.g. port in use). */
int kt_http_start(const struct kt_http_opts *o, const struct kt_http_route *routes,
                  size_t nroutes, struct kt_http **out);
/* Stops accepting, finishes requests in flight, frees. */
void kt_http_stop(struct kt_http *h);

/* A query parameter's (decoded) value, or NULL. For repeated keys (e.g.
 * traceID), kt_http_query_all calls fn for each value. */
const char *kt_http_query(const struct kt_http_req *req, const char *key);
void kt_http_query_all(const struct kt_http_req *req, const char *key,
                       void (*fn)(const char *value, void *ud), void *ud);
const char *kt_http_header(const struct kt_http_req *req, const char *name);

/* Sets a JSON error body {"error":msg} (webhook style) and the status. */
void kt_http_error(struct kt_http_resp *resp, int status, const char *msg);
/* Sets a malloc'd body; takes ownership of body. */
void kt_http_set_body(struct kt_http_resp *resp, int status,
                      const char *content_type, char *body, size_t len);

#endif
