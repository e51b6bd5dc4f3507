/* bench_store: what the store's writer thread costs per span, through the
 * store API alone (no HTTP, no JSON), on the span mix the pipeline writes:
 *
 *   - objects (default 5,000) each with one trace (one window) whose id is
 *     16 random bytes, as the aggregator's hashed ids are;
 *   - per audit event on a random object: its object span the first time
 *     (parent 0), then one audit span with a random span id and a body of
 *     ~750 bytes (tags as the aggregator sets them, a few diff lines);
 *   - with probability 1/4 per event, a rewrite of a span already put
 *     (the object's pseudo span or its previous audit span, alternately):
 *     the same (trace_id, span_id) again, as a redelivery or a re-created
 *     pseudo span does — ~19 % of all spans;
 *   - one span-cache kv put per object span (as the span cache persists);
 *   - with --inbox, the durable webhook's load: a ~40 KB kv put per 100
 *     events, a flush, then its deletion.
 *
 * Spans are put from 2 threads, paced at --rate spans/s in all (0 = as
 * fast as the writer takes them: large group commits; the pipeline at
 * 20-50k spans/s gives the writer small ones). At the end it prints the
 * writer thread's CPU per span (/proc/self/task/TID/schedstat, user/system
 * from stat) and the bytes it wrote (task io wchar: WAL frames and
 * checkpoints), beside wall time, which this machine's shared cores make
 * unreliable.
 *
 * --batch-max=K caps a transaction at K ops: under valgrind, where pacing
 * cannot give the writer the small batches of real time, it stands in for
 * --rate.
 *
 *   bench_store sqlite PATH [N] [--rate=R] [--objects=O] [--inbox]
 *               [--batch-max=K]
 *   bench_store postgres CONNINFO [N] [...]  */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/kt_time.h"
#include "store/kt_store.h"
#include "store/kt_store_backend.h"

enum kind { ROOT, AUDIT, REWRITE_ROOT, REWRITE_AUDIT };

struct desc {
  enum kind kind;
  int obj;
  uint64_t span_id;
  int64_t start_us;
};

struct obj {
  uint8_t trace[16];
  uint64_t root, last_audit;
  char name[40], ns[24];
};

static struct kt_store *st;
static struct desc *descs;
static struct obj *objs;
static int total, rate, inbox;
static const int64_t base_us = 1767225600000000LL;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) /* splitmix64: the same mix every run */
{
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int plan(int nobj)
{
  objs = calloc((size_t)nobj, sizeof *objs);
  descs = calloc((size_t)total, sizeof *descs);
  if (!objs || !descs)
    return -1;
  for (int o = 0; o < nobj; o++) {
    uint64_t a = rnd(), b = rnd();
    memcpy(objs[o].trace, &a, 8);
    memcpy(objs[o].trace + 8, &b, 8);
    snprintf(objs[o].name, sizeof objs[o].name, "web-%08llx-%05llx",
             (unsigned long long)(rnd() & 0xffffffff),
             (unsigned long long)(rnd() & 0xfffff));
    snprintf(objs[o].ns, sizeof objs[o].ns, "team-%d", o % 37);
  }
  int n = 0, ev = 0, rewrites = 0;
  while (n < total) {
    int o = (int)(rnd() % (uint64_t)nobj);
    int64_t t = base_us + (int64_t)ev++ * 20;
    if (!objs[o].root) {
      objs[o].root = rnd() | 1;
      descs[n++] = (struct desc){ROOT, o, objs[o].root, t};
      if (n == total)
        break;
    }
    objs[o].last_audit = rnd() | 1;
    descs[n++] = (struct desc){AUDIT, o, objs[o].last_audit, t};
    if (n < total && rnd() % 4 == 0) {
      int root = ev & 1;
      descs[n++] = (struct desc){root ? REWRITE_ROOT : REWRITE_AUDIT, o,
                                 root ? objs[o].root : objs[o].last_audit, t};
      rewrites++;
    }
  }
  printf("mix: %d spans, %d events, %d objects, %.1f %% rewrites\n", total,
         ev, nobj, 100.0 * rewrites / total);
  return 0;
}

static const char *verbs[] = {"update", "patch", "update", "patch", "create"};

static struct kt_span *span(const struct desc *d)
{
  const struct obj *o = &objs[d->obj];
  int root = d->kind == ROOT || d->kind == REWRITE_ROOT;
  char op[96], buf[160];
  snprintf(op, sizeof op, "pods/%s", o->name);
  struct kt_span *s = kt_span_new(root ? "object" : "audit",
                                  root ? op : verbs[d->span_id % 5]);
  memcpy(s->trace_id, o->trace, 16);
  s->span_id = d->span_id;
  s->parent_id = root ? 0 : o->root;
  s->start_us = root ? base_us : d->start_us;
  s->end_us = root ? base_us + 1800000000LL : d->start_us + 3000 + (int64_t)(d->span_id % 5000);
  kt_span_add_tag(s, "cluster", "bench");
  kt_span_add_tag(s, "group", "");
  kt_span_add_tag(s, "resource", "pods");
  kt_span_add_tag(s, "namespace", o->ns);
  kt_span_add_tag(s, "name", o->name);
  kt_span_add_tag(s, "zzz-traceSource", root ? "object" : "audit");
  if (root) {
    kt_span_add_tag(s, "zzz-pseudoType", "object");
    kt_span_add_tag(s, "timeStamp", "2026-01-01T00:00:00Z");
    return s;
  }
  kt_span_add_tag(s, "zzz-notPseudo", "zzz-notPseudo");
  kt_span_add_tag(s, "tag", verbs[d->span_id % 5]);
  snprintf(buf, sizeof buf, "%016llx-8d0e-4a57-9f1e-3c1b7b0f6a11",
           (unsigned long long)d->span_id);
  kt_span_add_tag(s, "auditId", buf);
  kt_span_add_tag(s, "username", "system:serviceaccount:kube-system:replicaset-controller");
  kt_span_add_tag(s, "userAgent", "kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819/system:serviceaccount:kube-system:replicaset-controller");
  kt_span_add_tag(s, "sourceIP", "10.0.0.12");
  snprintf(buf, sizeof buf, "/api/v1/namespaces/%s/pods/%s/status", o->ns, o->name);
  kt_span_add_tag(s, "requestURI", buf);
  kt_span_add_tag(s, "code", "200");
  snprintf(buf, sizeof buf, "status.conditions[1].lastTransitionTime \"2026-01-01T00:%02d:%02dZ\" -> \"2026-01-01T00:%02d:%02dZ\"",
           (int)(d->span_id % 60), (int)(d->span_id / 7 % 60),
           (int)(d->span_id / 11 % 60), (int)(d->span_id / 13 % 60));
  kt_span_add_log(s, d->start_us, "audit/objectDiff", buf);
  snprintf(buf, sizeof buf, "metadata.resourceVersion \"%llu\" -> \"%llu\"",
           (unsigned long long)(d->span_id % 100000000),
           (unsigned long long)(d->span_id % 100000000 + 17));
  kt_span_add_log(s, d->start_us, "audit/objectDiff", buf);
  kt_span_add_log(s, d->start_us, "audit/objectDiff",
                  "status.containerStatuses[0].ready false -> true");
  return s;
}

static void kv_spancache(const struct desc *d)
{
  char key[160], val[80];
  const struct obj *o = &objs[d->obj];
  snprintf(key, sizeof key, "bench/pods/%s/%s/field=object,window=982903", o->ns, o->name);
  snprintf(val, sizeof val, "00112233445566778899aabbccddeeff:%016llx",
           (unsigned long long)d->span_id);
  kt_store_kv_put(st, "spancache", key, val, strlen(val), kt_now_us() + 3600000000LL);
}

/* The durable webhook: a compressed request body per 100 events, in the
 * kv inbox until its spans are committed. */
static void kv_inbox(int th, int seq, int del)
{
  static char blob[40000];
  char key[40];
  snprintf(key, sizeof key, "%d-%d", th, seq);
  if (del) {
    kt_store_kv_del(st, "inbox", key);
    return;
  }
  for (size_t i = 0; i < sizeof blob; i++)
    blob[i] = (char)(rnd() >> 56);
  kt_store_kv_put(st, "inbox", key, blob, sizeof blob, 0);
  kt_store_flush(st);
}

static void *putter(void *arg)
{
  int th = (int)(intptr_t)arg, nput = 0, req = 0;
  int64_t t0 = kt_mono_us();
  for (int i = th; i < total; i += 2, nput++) {
    if (rate) { /* each thread puts rate/2 spans/s */
      int64_t due = t0 + (int64_t)nput * 2000000 / rate;
      int64_t now = kt_mono_us();
      if (due > now) {
        struct timespec ts = {0, (long)(due - now) * 1000};
        nanosleep(&ts, NULL);
      }
    }
    if (inbox && nput % 125 == 0) {
      if (req)
        kv_inbox(th, req - 1, 1);
      kv_inbox(th, req++, 0);
    }
    if (descs[i].kind == ROOT)
      kv_spancache(&descs[i]);
    kt_store_put(st, span(&descs[i]));
  }
  if (inbox && req)
    kv_inbox(th, req - 1, 1);
  return NULL;
}

/* ---- per-thread accounting from /proc ---------------------------------- */

struct tcpu {
  double run_s, user_s, sys_s;
  unsigned long long wchar;
};

static int read_file(const char *path, char *buf, size_t len)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, len - 1, f);
  buf[n] = 0;
  fclose(f);
  return 0;
}

/* Adds the accounting of every thread whose name starts with prefix. */
static void thread_cpu(const char *prefix, struct tcpu *t)
{
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  char path[300], buf[2048];
  long tck = sysconf(_SC_CLK_TCK);
  memset(t, 0, sizeof *t);
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    if (read_file(path, buf, sizeof buf) || strncmp(buf, prefix, strlen(prefix)))
      continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
    if (!read_file(path, buf, sizeof buf))
      t->run_s += strtod(buf, NULL) / 1e9;
    snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    if (!read_file(path, buf, sizeof buf)) {
      char *p = strrchr(buf, ')'); /* fields after comm: state is #3 */
      unsigned long ut = 0, stt = 0;
      if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                      &ut, &stt) == 2) {
        t->user_s += (double)ut / (double)tck;
        t->sys_s += (double)stt / (double)tck;
      }
    }
    snprintf(path, sizeof path, "/proc/self/task/%s/io", e->d_name);
    if (!read_file(path, buf, sizeof buf)) {
      char *w = strstr(buf, "wchar:");
      if (w)
        t->wchar += strtoull(w + 6, NULL, 10);
    }
  }
  if (d)
    closedir(d);
}

static double file_mb(const char *path, const char *suffix)
{
  char p[1024];
  struct stat sb;
  snprintf(p, sizeof p, "%s%s", path, suffix);
  return stat(p, &sb) ? 0 : (double)sb.st_size / 1e6;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: bench_store sqlite|postgres PATH|CONNINFO [N]"
                    " [--rate=SPANS_PER_S] [--objects=N] [--inbox]\n");
    return 2;
  }
  total = 75100;
  int nobj = 5000;
  size_t batch_max = 0;
  for (int i = 3; i < argc; i++) {
    if (!strncmp(argv[i], "--rate=", 7))
      rate = atoi(argv[i] + 7);
    else if (!strncmp(argv[i], "--objects=", 10))
      nobj = atoi(argv[i] + 10);
    else if (!strncmp(argv[i], "--batch-max=", 12))
      batch_max = (size_t)atol(argv[i] + 12);
    else if (!strcmp(argv[i], "--inbox"))
      inbox = 1;
    else
      total = atoi(argv[i]);
  }
  if (total < 1 || nobj < 1 || plan(nobj))
    return 2;
  {
    struct kt_span *s = span(&descs[1]);
    unsigned char *body;
    size_t len;
    if (!kt__store_encode_body(s, &body, &len))
      printf("audit span body: %zu bytes\n", len);
    free(body);
    kt_span_free(s);
  }
  struct kt_store_opts o = {.batch_max = batch_max};
  int pg = !strcmp(argv[1], "postgres");
  int rc = pg ? kt_store_open_postgres(argv[2], &o, &st)
              : kt_store_open_sqlite(argv[2], &o, &st);
  if (rc)
    return 1;
  int64_t t0 = kt_mono_us();
  pthread_t th[2];
  for (intptr_t i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, putter, (void *)i);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  kt_store_flush(st);
  double secs = (double)(kt_mono_us() - t0) / 1e6;
  struct tcpu w, c;
  thread_cpu(pg ? "kt-pg-writer" : "kt-writer", &w);
  thread_cpu("kt-ckpt", &c);
  printf("%s: %d spans in %.2f s = %.0f spans/s (paced at %d/s; 0 = unpaced)\n",
         argv[1], total, secs, total / secs, rate);
  printf("writer CPU: %.2f us/span (user %.2f + sys %.2f s, ticks), "
         "wrote %.0f bytes/span\n",
         w.run_s * 1e6 / total, w.user_s, w.sys_s, (double)w.wchar / total);
  if (c.run_s > 0)
    printf("checkpointer CPU: %.2f us/span, wrote %.0f bytes/span; "
           "writer + checkpointer %.2f us/span\n",
           c.run_s * 1e6 / total, (double)c.wchar / total,
           (w.run_s + c.run_s) * 1e6 / total);
  if (!pg)
    printf("file: %.1f MB + WAL %.1f MB\n", file_mb(argv[2], ""),
           file_mb(argv[2], "-wal"));
  kt_store_close(st);
  free(descs);
  free(objs);
  return 0;
}
