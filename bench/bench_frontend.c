/* bench_frontend: the two frontend targets of issue 3, in process.
 *  1. The trace view of a Deployment with 2 ReplicaSets and 100 Pods over
 *     2 hours (4 windows), in `tracing [full tree]`: spans shaped as the
 *     aggregator writes them (object and link spans in every window, audit
 *     spans with diff logs), the time of kt_assemble + JSON rendering.
 *  2. A search over a store holding 1M spans: kt_store_find by object
 *     (its windows, then its spans in each) and by resource.
 *
 *   bench_frontend [SPANS=1000000] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kt_time.h"
#include "frontend/kt_assemble.h"
#include "frontend/kt_modes.h"
#include "store/kt_store.h"

#define W (30 * 60 * 1000000LL)
#define T0 (1767225600LL * 1000000) /* 2026-01-01T00:00:00Z */

struct obj {
  const char *group, *resource, *name;
  uint8_t trace[4][16];
  uint64_t span[4];
};

static void key_tags(struct kt_span *s, const struct obj *o)
{
  kt_span_add_tag(s, "cluster", "bench");
  kt_span_add_tag(s, "group", o->group);
  kt_span_add_tag(s, "resource", o->resource);
  kt_span_add_tag(s, "namespace", "default");
  kt_span_add_tag(s, "name", o->name);
  kt_span_add_tag(s, "version", "v1");
}

static void object_span(struct kt_store *st, struct obj *o, int w)
{
  char op[256];
  snprintf(op, sizeof op, "%s/%s", o->resource, o->name);
  struct kt_span *s = kt_span_new("object", op);
  kt_random_trace_id(s->trace_id);
  s->span_id = kt_random_u64();
  s->start_us = T0 + w * W;
  s->end_us = s->start_us + W;
  key_tags(s, o);
  kt_span_add_tag(s, "zzz-traceSource", "object");
  kt_span_add_tag(s, "zzz-pseudoType", "object");
  memcpy(o->trace[w], s->trace_id, 16);
  o->span[w] = s->span_id;
  kt_store_put(st, s);
}

static void link_span(struct kt_store *st, struct obj *from, struct obj *to,
                      int w, const char *role)
{
  char op[256];
  snprintf(op, sizeof op, "%s/%s", from->resource, from->name);
  struct kt_span *s = kt_span_new("link", op);
  memcpy(s->trace_id, from->trace[w], 16);
  s->span_id = kt_random_u64();
  s->parent_id = from->span[w];
  s->start_us = T0 + w * W;
  s->end_us = s->start_us + W;
  key_tags(s, from);
  kt_span_add_tag(s, "zzz-traceSource", "object");
  kt_span_add_tag(s, "zzz-pseudoType", "link");
  kt_span_add_tag(s, "linkedCluster", "bench");
  kt_span_add_tag(s, "linkedGroup", to->group);
  kt_span_add_tag(s, "linkedResource", to->resource);
  kt_span_add_tag(s, "linkedNamespace", "default");
  kt_span_add_tag(s, "linkedName", to->name);
  kt_span_add_tag(s, "linkRole", role);
  kt_span_add_tag(s, "linkClass", "children");
  kt_store_put(st, s);
}

static void audit_span(struct kt_store *st, struct obj *o, int w, int i)
{
  struct kt_span *s = kt_span_new("audit", "system:node:n1 patch status");
  memcpy(s->trace_id, o->trace[w], 16);
  s->span_id = kt_random_u64();
  s->parent_id = o->span[w];
  s->start_us = T0 + w * W + (int64_t)(i + 1) * 60000000LL;
  s->end_us = s->start_us + 3000;
  key_tags(s, o);
  kt_span_add_tag(s, "zzz-traceSource", "audit");
  kt_span_add_tag(s, "zzz-notPseudo", "zzz-notPseudo");
  kt_span_add_tag(s, "auditId", "0000");
  kt_span_add_tag(s, "userAgent", "kubelet/v1.32.2");
  kt_span_add_tag(s, "responseCode", "200");
  kt_span_add_log(s, s->start_us, "audit/objectDiff",
                  "status.conditions[1].status \"False\" -> \"True\"\n"
                  "metadata.resourceVersion \"100\" -> \"101\"\n");
  kt_store_put(st, s);
}

static int64_t view_bench(struct kt_store *st)
{
  static struct obj dep = {.group = "apps", .resource = "deployments", .name = "big"}, rs[2], pods[100];
  static char names[102][64];
  for (int r = 0; r < 2; r++) {
    snprintf(names[r], 64, "big-rs%d", r);
    rs[r] = (struct obj){.group = "apps", .resource = "replicasets", .name = names[r]};
  }
  for (int p = 0; p < 100; p++) {
    snprintf(names[2 + p], 64, "big-rs%d-pod%03d", p % 2, p);
    pods[p] = (struct obj){.group = "", .resource = "pods", .name = names[2 + p]};
  }
  for (int w = 0; w < 4; w++) {
    object_span(st, &dep, w);
    for (int i = 0; i < 5; i++)
      audit_span(st, &dep, w, i);
    for (int r = 0; r < 2; r++) {
      object_span(st, &rs[r], w);
      link_span(st, &rs[r], &dep, w, "parent");
      link_span(st, &dep, &rs[r], w, "child");
      for (int i = 0; i < 5; i++)
        audit_span(st, &rs[r], w, i);
    }
    for (int p = 0; p < 100; p++) {
      object_span(st, &pods[p], w);
      link_span(st, &pods[p], &rs[p % 2], w, "parent");
      link_span(st, &rs[p % 2], &pods[p], w, "child");
      for (int i = 0; i < 5; i++)
        audit_span(st, &pods[p], w, i);
    }
  }
  kt_store_flush(st);
  struct kt_objkey k = {"bench", "apps", "deployments", "default", "big"};
  /* follow limit large enough for the whole tree, as a user would set it */
  struct kt_assemble_opts o = {W, 200};
  const struct kt_mode *m = kt_mode_by_id(0x21000000);
  int64_t best = INT64_MAX;
  size_t spans = 0;
  for (int rep = 0; rep < 5; rep++) {
    struct kt_tree t;
    kt_tree_init(&t);
    int64_t a = kt_mono_us();
    int rc = kt_assemble(st, &o, &k, T0, T0 + 4 * W - 1, m, &t);
    int64_t d = kt_mono_us() - a;
    if (rc) {
      fprintf(stderr, "assemble failed: %d\n", rc);
      exit(1);
    }
    spans = 0;
    for (size_t i = 0; i < t.n; i++)
      spans += t.s[i] != NULL;
    kt_tree_free(&t);
    best = d < best ? d : best;
  }
  printf("trace view, Deployment + 2 RS + 100 Pods, 4 windows, tracing [full tree]: "
         "%zu spans shown, best of 5: %.1f ms (stored: %lld spans)\n", spans,
         best / 1000.0, (long long)kt_store_count(st));
  return best;
}

/* The store: groups of 10 spans as the aggregator writes them, an object's
 * window (its object span) and 9 requests in that window's trace; 25,000
 * names x 4 resources, each in one of the 4 windows. */
static void search_bench(struct kt_store *st, long total)
{
  static const char *res[] = {"pods", "replicasets", "deployments", "services"};
  char name[64];
  for (long g = 0; g < total / 10; g++) {
    struct obj o = {.group = "", .resource = res[(g / 25000) % 4], .name = name};
    snprintf(name, sizeof name, "obj-%ld", g % 25000);
    int w = (int)(g % 4);
    object_span(st, &o, w);
    for (int i = 0; i < 9; i++) {
      struct kt_span *s = kt_span_new("audit", "u update");
      memcpy(s->trace_id, o.trace[w], 16);
      s->span_id = kt_random_u64();
      s->parent_id = o.span[w];
      s->start_us = T0 + w * W + (g % 1000) * 1000000LL + i;
      s->end_us = s->start_us + 1000;
      key_tags(s, &o);
      kt_span_add_tag(s, "zzz-traceSource", "audit");
      kt_store_put(st, s);
    }
  }
  kt_store_flush(st);
  struct kt_store_query q = {0};
  q.cluster = "bench";
  q.resource = "pods";
  q.namespace = "default";
  q.name = "obj-4242";
  q.service = "audit";
  q.start_us = T0;
  q.end_us = T0 + 4 * W;
  q.limit = 20;
  int64_t best = INT64_MAX, best_res = INT64_MAX;
  size_t n = 0, n2 = 0;
  for (int rep = 0; rep < 5; rep++) {
    struct kt_trace_ref *refs;
    int64_t a = kt_mono_us();
    kt_store_find(st, &q, &refs, &n);
    int64_t d = kt_mono_us() - a;
    free(refs);
    best = d < best ? d : best;
    struct kt_store_query q2 = q;
    q2.name = NULL; /* every pod in range: the UI's "resource=pods" search */
    a = kt_mono_us();
    kt_store_find(st, &q2, &refs, &n2);
    d = kt_mono_us() - a;
    free(refs);
    best_res = d < best_res ? d : best_res;
  }
  printf("search over %lld spans: by object %.2f ms (%zu traces), by resource "
         "(limit 20) %.2f ms (%zu traces)\n", (long long)kt_store_count(st),
         best / 1000.0, n, best_res / 1000.0, n2);
}

int main(int argc, char **argv)
{
  long total = argc > 1 ? atol(argv[1]) : 1000000;
  char dir[] = "/tmp/kt-bench-fe-XXXXXX", path[128];
  if (!mkdtemp(dir))
    return 1;
  struct kt_store *st;
  struct kt_store_opts so = {0};
  snprintf(path, sizeof path, "%s/a.db", dir);
  if (kt_store_open_sqlite(path, &so, &st))
    return 1;
  view_bench(st);
  kt_store_close(st);
  snprintf(path, sizeof path, "%s/b.db", dir);
  if (kt_store_open_sqlite(path, &so, &st))
    return 1;
  search_bench(st, total);
  kt_store_close(st);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd);
}
