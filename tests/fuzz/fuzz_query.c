/* libFuzzer harness for the query API's parameters: the first line of an
 * input is the path (/api/traces, /api/traces/<id>, /redirect, ...), the
 * rest the raw query string (service, operation, tags JSON, start/end,
 * limit, durations, traceID, ...). Every route handler must answer with a
 * status, never crash or leak. The store is a real (empty) SQLite file
 * made once. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/kt_frontend.h"
#include "frontend/kt_modes.h"
#include "http/kt_http.h"
#include "store/kt_store.h"

static struct kt_store *store;
static struct kt_frontend *fe;
static const struct kt_http_route *routes;
static size_t nroutes;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  char dir[] = "/tmp/kt-fuzz-query-XXXXXX", path[128], err[256];
  if (!mkdtemp(dir))
    abort();
  snprintf(path, sizeof path, "%s/db", dir);
  struct kt_store_opts so = {0};
  if (kt_store_open_sqlite(path, &so, &store) || kt_modes_install(NULL, err, sizeof err))
    abort();
  struct kt_frontend_opts fo = {.clusters = NULL, .trace_cache_ttl_us = 3600000000LL,
                               .follow_link_limit = 10, .span_ttl_us = 1800000000LL};
  if (kt_frontend_new(&fo, store, &fe))
    abort();
  routes = kt_frontend_routes(fe, &nroutes);
  return 0;
}

/* As the server matches routes (kt_http.c). */
static int matches(const struct kt_http_route *r, const char *path)
{
  size_t n = strlen(r->prefix);
  if (n && (r->prefix[n - 1] == '/' || r->prefix[n - 1] == '*'))
    return strncmp(path, r->prefix, r->prefix[n - 1] == '*' ? n - 1 : n) == 0;
  return strcmp(path, r->prefix) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *buf = malloc(size + 1);
  if (!buf)
    return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *nl = strchr(buf, '\n');
  const char *query = "";
  if (nl) {
    *nl = 0;
    query = nl + 1;
  }
  struct kt_http_req req = {"GET", buf, "", 0, "127.0.0.1", NULL, query};
  for (size_t i = 0; i < nroutes; i++) {
    if ((routes[i].method && strcmp(routes[i].method, "GET")) || !matches(&routes[i], buf))
      continue;
    struct kt_http_resp resp = {0};
    int handled = routes[i].fn(routes[i].ud, &req, &resp) == 0;
    if (handled && (resp.status < 100 || resp.status > 599))
      abort(); /* every answer has a status */
    free(resp.body);
    if (handled)
      break;
  }
  free(buf);
  return 0;
}
