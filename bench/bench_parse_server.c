/* bench_parse_server: the ingest benchmark's baseline over HTTP. The same
 * server as kelemetry's webhook (kt_http, 2 threads) receives the same
 * bodies, parses each and validates every event as bench_parse does, then
 * answers 200 and does nothing else: no queue, no consumers, no store.
 * Driven by bench_webhook (METRICS_PORT 0) exactly as kelemetry is, it
 * gives the parse-only rate of the same input on the same cores, HTTP
 * included, the way ../shared/reference/dependencies.md measured "copy +
 * cJSON parse" for the core issue's target.
 *
 *   bench_parse_server PORT [cjson|kt]    (runs until SIGINT/SIGTERM) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/kt_http.h"
#include "json/kt_jmem.h"
#include "parse_body.h"

static int stock = 1; /* cJSON's parser on the heap; else the webhook's */

static int handle(void *ud, const struct kt_http_req *req,
                  struct kt_http_resp *resp)
{
  (void)ud;
  if (parse_body(req->body, req->len, stock) < 0) {
    kt_http_error(resp, 400, "not an audit EventList");
    return 0;
  }
  resp->status = 200;
  resp->static_body = "{}";
  resp->len = 2;
  return 0;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [cjson|kt]\n", argv[0]);
    return 2;
  }
  stock = argc < 3 || strcmp(argv[2], "kt") != 0;
  if (!stock && kt_jmem_install())
    return 1;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  static const struct kt_http_route routes[] = {{"POST", "/audit/", handle, NULL}};
  struct kt_http_opts o = {.address = "127.0.0.1", .port = atoi(argv[1]),
                           .threads = 2, .name = "webhook"};
  struct kt_http *h;
  if (kt_http_start(&o, routes, 1, &h))
    return 1;
  int sig;
  sigwait(&set, &sig);
  kt_http_stop(h);
  return 0;
}
