/* kt_store_pg: the span store on a shared PostgreSQL server (see
 * kt_store.h and docs/internals/store.md).
 *
 * Writes go through the same bounded writer queue as the SQLite store;
 * the writer thread owns one connection and commits each batch in one
 * transaction with multi-row upserts (INSERT ... ON CONFLICT DO UPDATE),
 * so the same span written twice, by one process or by several, is one
 * row. When the server goes away the writer keeps its batch and retries
 * with backoff until it is back: the queue fills, put() blocks, ingest
 * stalls and then resumes, nothing is lost.
 *
 * Spans are partitioned by range of start_us, one partition per
 * partition_us (24h), created ahead of need and on demand (old data being
 * replayed); retention drops whole partitions. Reads use a small pool of
 * connections, one reader per connection at a time; a read that cannot
 * reach the server fails with -EIO at once. */
#include "store/kt_store_backend.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

#define SCHEMA_VERSION 1
/* Advisory lock keys ("kelemetr" + 0/1): migration, partition changes. */
#define LOCK_MIGRATE 0x6b656c656d657472LL
#define LOCK_PARTS (LOCK_MIGRATE + 1)
#define BACKOFF_MIN_US 100000
#define BACKOFF_MAX_US 5000000
#define DOWN_LOG_EVERY_US 30000000

#define BYTEAOID 17
#define INT8OID 20
#define TEXTOID 25

struct part {
  int64_t from, to; /* [from, to) of start_us */
  char name[64];
};

struct pg {
  struct kt_store base;
  struct kt__wq wq;
  char *conninfo;
  int64_t part_us;
  PGconn *w; /* the writer's connection: writer thread (and open) only */
  int64_t down_since, down_logged;
  _Atomic int stalled; /* writes failing: read by kt_store_stalled */
  /* known partitions, sorted by from; the writer and retain share them */
  pthread_mutex_t part_mu;
  struct part *parts;
  size_t nparts, parts_cap;
  /* the read pool */
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_cv;
  PGconn **pool;
  unsigned char *busy;
  unsigned npool;
  struct kt_metric *m_written, *m_errors, *m_failures;
  struct kt_series *s_batch;
};

#define PG(b) ((struct pg *)(b))

/* Migrations in order; migrations[i] takes the schema from version i to
 * i + 1. A version is never edited once released: add one instead. */
static const char *const migrations[SCHEMA_VERSION] = {
    /* 1: the primary key must contain the partition key; start_us of a
     * span id never changes (ids are derived from the audit ID or from the
     * object and window), so it is still one row per span. */
    "CREATE TABLE spans("
    " trace_id bytea NOT NULL, span_id bigint NOT NULL,"
    " parent_id bigint NOT NULL, service text NOT NULL,"
    " operation text NOT NULL, start_us bigint NOT NULL,"
    " end_us bigint NOT NULL, cluster text, grp text, resource text,"
    " namespace text, name text, body bytea NOT NULL,"
    " PRIMARY KEY (trace_id, span_id, start_us))"
    " PARTITION BY RANGE (start_us);"
    "CREATE INDEX spans_object ON spans"
    " (cluster, resource, name, namespace, start_us);"
    "CREATE INDEX spans_resource ON spans (cluster, resource, start_us);"
    "CREATE INDEX spans_roots ON spans (cluster) WHERE parent_id = 0;"
    "CREATE TABLE kv(ns text NOT NULL, key text NOT NULL,"
    " value bytea NOT NULL, expires_us bigint NOT NULL,"
    " PRIMARY KEY (ns, key));"
    "CREATE INDEX kv_expiry ON kv (expires_us) WHERE expires_us <> 0;",
};

/* ---- small helpers ---------------------------------------------------- */

static void sleep_us(int64_t us)
{
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void count_failure(struct pg *p, const char *op)
{
  const char *v[] = {"postgres", op};
  kt_metric_inc(p->m_failures, v);
}

/* libpq messages end with a newline and may hold several lines: keep the
 * first line, the log is one line per event. */
static const char *first_line(const char *msg, char *buf, size_t len)
{
  snprintf(buf, len, "%s", msg ? msg : "");
  buf[strcspn(buf, "\n")] = 0;
  return buf;
}

static void quiet_notice(void *arg, const char *msg)
{
  /* CREATE ... IF NOT EXISTS notices would go to stderr otherwise. */
}

/* Defaults first: the caller's conninfo (expanded from dbname) overrides
 * them. */
static PGconn *connect_pg(const char *conninfo, int quiet)
{
  const char *k[] = {"connect_timeout", "application_name", "keepalives_idle",
                     "dbname", NULL};
  const char *v[] = {"5", "kelemetry", "30", conninfo, NULL};
  PGconn *c = PQconnectdbParams(k, v, 1);
  if (c && PQstatus(c) == CONNECTION_OK) {
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    return c;
  }
  if (!quiet) {
    char buf[512];
    kt_error("store: cannot connect to PostgreSQL: %s",
             first_line(c ? PQerrorMessage(c) : "out of memory", buf,
                        sizeof buf));
  }
  PQfinish(c);
  return NULL;
}

/* Classifies a failure: -ENOTCONN when the connection is gone (or the
 * server is shutting down: reconnect, retry), -EAGAIN for the server's
 * passing state (disk full, deadlock, lock timeout: retry), -EINVAL when it
 * is about the statement or its data (a retry would fail the same way). */
static int failure(PGconn *c, const PGresult *r)
{
  if (PQstatus(c) != CONNECTION_OK)
    return -ENOTCONN;
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  /* 08 connection, 57 operator intervention (shutdown, cannot connect) */
  if (!st || !strncmp(st, "08", 2) || !strncmp(st, "57", 2))
    return -ENOTCONN;
  /* 53 resources (disk full), 58 system error, 40 serialization /
   * deadlock, 55P03 lock not available */
  if (!strncmp(st, "53", 2) || !strncmp(st, "58", 2) ||
      !strncmp(st, "40", 2) || !strcmp(st, "55P03"))
    return -EAGAIN;
  return -EINVAL;
}

/* Runs a command; 0, or a failure() code with the reason logged. */
static int cmd(PGconn *c, const char *sql)
{
  PGresult *r = PQexec(c, sql);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
           PQresultStatus(r) == PGRES_TUPLES_OK;
  int rc = ok ? 0 : failure(c, r);
  if (!ok) {
    char buf[512];
    kt_error("store: %.40s...: %s", sql, first_line(PQerrorMessage(c), buf,
                                                   sizeof buf));
  }
  PQclear(r);
  return rc;
}

static void put_be64(unsigned char *b, int64_t v)
{
  uint64_t u = (uint64_t)v;
  for (int i = 7; i >= 0; i--, u >>= 8)
    b[i] = (unsigned char)u;
}

static int64_t get_be64(const char *b)
{
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u = u << 8 | (unsigned char)b[i];
  return (int64_t)u;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  if (s[0] < 0x80)
    return 1;
  size_t len = s[0] >= 0xf0 && s[0] <= 0xf4   ? 4
               : s[0] >= 0xe0                 ? 3
               : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
                                              : 0;
  if (!len || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
      (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
    return 0; /* overlong, surrogate, above U+10FFFF */
  return len;
}

/* PostgreSQL refuses text that is not UTF-8, and one bad value must not
 * block a whole batch: columns get a copy with U+FFFD for each bad byte
 * (the body keeps the exact bytes). Returns s itself when it is valid,
 * else a copy recorded in *arena (freed by the caller). NULL on ENOMEM. */
struct arena {
  char **v;
  size_t n, cap;
};

static const char *utf8_clean(const char *s, struct arena *a)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s), i = 0, len;
  while (i < n && (len = utf8_seq(u + i, n - i)))
    i += len;
  if (i == n)
    return s;
  char *out = malloc(n * 3 + 1), *o = out;
  if (!out || KT_GROW(a->v, a->cap, a->n)) {
    free(out);
    return NULL;
  }
  a->v[a->n++] = out;
  for (i = 0; i < n;) {
    len = utf8_seq(u + i, n - i);
    if (len) {
      memcpy(o, s + i, len);
      o += len;
      i += len;
    } else {
      memcpy(o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  *o = 0;
  return out;
}

static void arena_free(struct arena *a)
{
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  memset(a, 0, sizeof *a);
}

/* ---- SQL text --------------------------------------------------------- */

struct sbuf {
  char *b;
  size_t len, cap;
  int failed;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = s->failed ? 0 : vsnprintf(s->b + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    if (s->failed || (size_t)n < s->cap - s->len) {
      s->len += (size_t)n;
      return;
    }
    size_t cap = s->cap ? s->cap * 2 : 1024;
    while (cap < s->len + (size_t)n + 1)
      cap *= 2;
    char *b = realloc(s->b, cap);
    if (!b) {
      s->failed = 1;
      return;
    }
    s->b = b;
    s->cap = cap;
  }
}

/* "($1,$2),($3,$4)" for rows of ncols parameters from $first. */
static void sb_rows(struct sbuf *s, size_t rows, int ncols, int first)
{
  for (size_t r = 0; r < rows; r++) {
    sb_printf(s, r ? ",(" : "(");
    for (int c = 0; c < ncols; c++)
      sb_printf(s, c ? ",$%d" : "$%d", first + (int)r * ncols + c);
    sb_printf(s, ")");
  }
}

/* ---- partitions ------------------------------------------------------- */

/* Parses "FOR VALUES FROM ('1') TO ('2')"; 0 or -EINVAL (MINVALUE...). */
static int parse_bound(const char *s, int64_t *from, int64_t *to)
{
  long long a, b;
  if (sscanf(s, "FOR VALUES FROM ('%lld') TO ('%lld')", &a, &b) != 2)
    return -EINVAL;
  *from = a;
  *to = b;
  return 0;
}

static int cmp_part(const void *a, const void *b)
{
  const struct part *x = a, *y = b;
  return x->from < y->from ? -1 : x->from > y->from;
}

/* Reloads the partition list from the catalog; caller holds part_mu. */
static int load_parts(struct pg *p, PGconn *c)
{
  PGresult *r = PQexec(c,
      "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)"
      " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
      " WHERE i.inhparent = 'spans'::regclass");
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    int rc = failure(c, r);
    PQclear(r);
    return rc;
  }
  p->nparts = 0;
  for (int i = 0; i < PQntuples(r); i++) {
    struct part pt;
    if (parse_bound(PQgetvalue(r, i, 1), &pt.from, &pt.to) ||
        KT_GROW(p->parts, p->parts_cap, p->nparts))
      continue;
    snprintf(pt.name, sizeof pt.name, "%s", PQgetvalue(r, i, 0));
    p->parts[p->nparts++] = pt;
  }
  PQclear(r);
  if (p->nparts)
    qsort(p->parts, p->nparts, sizeof *p->parts, cmp_part);
  return 0;
}

static int covered(const struct pg *p, int64_t t)
{
  for (size_t i = 0; i < p->nparts; i++)
    if (t >= p->parts[i].from && t < p->parts[i].to)
      return 1;
  return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return q * b > a ? q - 1 : q;
}

/* The partition for t: its aligned interval, shortened where it would
 * overlap a partition made with another interval length. */
static void bounds_for(const struct pg *p, int64_t t, int64_t *lo, int64_t *hi)
{
  *lo = floor_div(t, p->part_us) * p->part_us;
  *hi = *lo + p->part_us;
  for (size_t i = 0; i < p->nparts; i++) {
    const struct part *x = &p->parts[i];
    if (x->to <= t && x->to > *lo)
      *lo = x->to;
    if (x->from > t && x->from < *hi)
      *hi = x->from;
  }
}

static void part_name(int64_t lo, char *buf, size_t len)
{
  time_t secs = (time_t)floor_div(lo, 1000000);
  struct tm tm;
  if (lo % 1000000 == 0 && gmtime_r(&secs, &tm) && tm.tm_year >= 0 &&
      tm.tm_year < 8000)
    strftime(buf, len, "spans_%Y%m%d_%H%M%S", &tm);
  else
    snprintf(buf, len, "spans_x%llx", (unsigned long long)lo);
}

/* Creates the partition holding t unless one exists (another process may
 * have just made it: the catalog is re-read under the lock). Caller holds
 * part_mu and no transaction is open on c. */
static int create_part(struct pg *p, PGconn *c, int64_t t)
{
  char sql[256], name[64];
  int rc = cmd(c, "BEGIN");
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)",
           (long long)LOCK_PARTS);
  rc = rc ? rc : cmd(c, sql);
  rc = rc ? rc : load_parts(p, c);
  if (!rc && !covered(p, t)) {
    int64_t lo, hi;
    bounds_for(p, t, &lo, &hi);
    part_name(lo, name, sizeof name);
    snprintf(sql, sizeof sql,
             "CREATE TABLE IF NOT EXISTS %s PARTITION OF spans"
             " FOR VALUES FROM (%lld) TO (%lld)", name, (long long)lo,
             (long long)hi);
    rc = cmd(c, sql);
  }
  rc = rc ? rc : cmd(c, "COMMIT");
  if (rc) {
    PQclear(PQexec(c, "ROLLBACK"));
    return rc;
  }
  return load_parts(p, c);
}

/* Makes sure a partition holds each of the n times. */
static int ensure_parts(struct pg *p, PGconn *c, const int64_t *t, size_t n)
{
  int rc = 0;
  pthread_mutex_lock(&p->part_mu);
  for (size_t i = 0; i < n && !rc; i++)
    if (!covered(p, t[i]))
      rc = create_part(p, c, t[i]);
  pthread_mutex_unlock(&p->part_mu);
  return rc;
}

/* The current partition and the next one exist before they are needed. */
static int ensure_ahead(struct pg *p, PGconn *c)
{
  int64_t now = kt_now_us();
  int64_t t[2] = {now, now + p->part_us};
  return ensure_parts(p, c, t, 2);
}

/* ---- schema ----------------------------------------------------------- */

static int migrate(PGconn *c)
{
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)",
           (long long)LOCK_MIGRATE);
  int rc = cmd(c, "BEGIN");
  rc = rc ? rc : cmd(c, sql);
  rc = rc ? rc : cmd(c, "CREATE TABLE IF NOT EXISTS schema_version"
                        "(version integer NOT NULL)");
  PGresult *r = rc ? NULL : PQexec(c, "SELECT coalesce(max(version), 0)"
                                      " FROM schema_version");
  int version = r && PQresultStatus(r) == PGRES_TUPLES_OK
                    ? atoi(PQgetvalue(r, 0, 0)) : -1;
  PQclear(r);
  if (!rc && version < 0)
    rc = -EIO;
  if (!rc && version > SCHEMA_VERSION) {
    kt_error("store: the PostgreSQL schema has version %d, newer than this "
             "build's %d", version, SCHEMA_VERSION);
    rc = -EPROTO;
  }
  for (int v = version; !rc && v < SCHEMA_VERSION; v++) {
    kt_info("store: migrating the PostgreSQL schema to version %d", v + 1);
    rc = cmd(c, migrations[v]);
    snprintf(sql, sizeof sql, "DELETE FROM schema_version;"
             "INSERT INTO schema_version VALUES (%d)", v + 1);
    rc = rc ? rc : cmd(c, sql);
  }
  rc = rc ? rc : cmd(c, "COMMIT");
  if (rc)
    PQclear(PQexec(c, "ROLLBACK"));
  return rc == -EPROTO ? rc : rc ? -EIO : 0;
}

/* ---- writes ----------------------------------------------------------- */

/* Parameters of one multi-row statement. */
struct params {
  const char **v;
  int *len, *fmt;
  Oid *type;
  unsigned char *ints; /* 8-byte big-endian integers */
  int n, nints, cap;
};

static int params_init(struct params *ps, int cap)
{
  memset(ps, 0, sizeof *ps);
  ps->v = calloc((size_t)cap, sizeof *ps->v);
  ps->len = calloc((size_t)cap, sizeof *ps->len);
  ps->fmt = calloc((size_t)cap, sizeof *ps->fmt);
  ps->type = calloc((size_t)cap, sizeof *ps->type);
  ps->ints = calloc((size_t)cap, 8);
  ps->cap = cap;
  return ps->v && ps->len && ps->fmt && ps->type && ps->ints ? 0 : -ENOMEM;
}

static void params_free(struct params *ps)
{
  free(ps->v);
  free(ps->len);
  free(ps->fmt);
  free(ps->type);
  free(ps->ints);
}

static void p_bin(struct params *ps, Oid type, const void *v, size_t len)
{
  ps->v[ps->n] = v;
  ps->len[ps->n] = (int)len;
  ps->fmt[ps->n] = 1;
  ps->type[ps->n++] = type;
}

static void p_text(struct params *ps, const char *s)
{
  p_bin(ps, TEXTOID, s, s ? strlen(s) : 0);
}

static void p_int(struct params *ps, int64_t v)
{
  unsigned char *b = ps->ints + 8 * (size_t)ps->nints++;
  put_be64(b, v);
  p_bin(ps, INT8OID, b, 8);
}

static int run(PGconn *c, const char *sql, const struct params *ps)
{
  PGresult *r = PQexecParams(c, sql, ps->n, ps->type, ps->v, ps->len,
                             ps->fmt, 0);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  int rc = ok ? 0 : failure(c, r);
  if (!ok) {
    char buf[512];
    kt_error("store: write failed: %s",
             first_line(PQerrorMessage(c), buf, sizeof buf));
  }
  PQclear(r);
  return rc;
}

#define SPAN_NCOLS 13
#define KV_NCOLS 4
/* 65535 parameters per statement at most */
#define ROWS_PER_STMT 2048

static int add_span_row(struct params *ps, const struct kt__op *op,
                        struct arena *a)
{
  const struct kt_span *s = op->span;
  const char *svc = utf8_clean(s->service, a);
  const char *opn = utf8_clean(s->operation, a);
  if (!svc || !opn)
    return -ENOMEM;
  p_bin(ps, BYTEAOID, s->trace_id, 16);
  p_int(ps, (int64_t)s->span_id);
  p_int(ps, (int64_t)s->parent_id);
  p_text(ps, svc);
  p_text(ps, opn);
  p_int(ps, s->start_us);
  p_int(ps, s->end_us);
  for (int i = 0; i < 5; i++) {
    const char *v = kt_span_tag(s, kt__store_key_tags[i]);
    const char *c = v ? utf8_clean(v, a) : NULL;
    if (v && !c)
      return -ENOMEM;
    p_text(ps, c); /* NULL: SQL NULL */
  }
  p_bin(ps, BYTEAOID, op->body, op->body_len);
  return 0;
}

static int add_kv_row(struct params *ps, const struct kt__op *op,
                      struct arena *a)
{
  const char *ns = utf8_clean(op->ns, a), *key = utf8_clean(op->key, a);
  if (!ns || !key)
    return -ENOMEM;
  p_text(ps, ns);
  p_text(ps, key);
  if (op->kind == KT__OP_KV_PUT) {
    p_bin(ps, BYTEAOID, op->val ? op->val : "", op->len);
    p_int(ps, op->expires_us);
  }
  return 0;
}

static const char *const upsert_tail[3] = {
    [KT__OP_SPAN] = " ON CONFLICT (trace_id, span_id, start_us) DO UPDATE SET"
        " parent_id = EXCLUDED.parent_id, service = EXCLUDED.service,"
        " operation = EXCLUDED.operation, end_us = EXCLUDED.end_us,"
        " cluster = EXCLUDED.cluster, grp = EXCLUDED.grp,"
        " resource = EXCLUDED.resource, namespace = EXCLUDED.namespace,"
        " name = EXCLUDED.name, body = EXCLUDED.body",
    [KT__OP_KV_PUT] = (" ON CONFLICT (ns, key) DO UPDATE SET"
                       " value = EXCLUDED.value, expires_us = EXCLUDED.expires_us"),
    [KT__OP_KV_DEL] = ") AS d(ns, key) WHERE kv.ns = d.ns AND kv.key = d.key",
};

/* One statement for up to ROWS_PER_STMT ops of one kind. */
static int write_rows(PGconn *c, enum kt__op_kind kind,
                      struct kt__op *const *ops, size_t n)
{
  static const char *const head[3] = {
      [KT__OP_SPAN] = "INSERT INTO spans VALUES ",
      [KT__OP_KV_PUT] = "INSERT INTO kv VALUES ",
      [KT__OP_KV_DEL] = "DELETE FROM kv USING (VALUES "};
  int ncols = kind == KT__OP_SPAN ? SPAN_NCOLS
              : kind == KT__OP_KV_PUT ? KV_NCOLS : 2;
  struct params ps;
  struct sbuf sql = {0};
  struct arena a = {0};
  int rc = params_init(&ps, (int)n * ncols);
  for (size_t i = 0; i < n && !rc; i++)
    rc = kind == KT__OP_SPAN ? add_span_row(&ps, ops[i], &a)
                             : add_kv_row(&ps, ops[i], &a);
  sb_printf(&sql, "%s", head[kind]);
  sb_rows(&sql, n, ncols, 1);
  sb_printf(&sql, "%s", upsert_tail[kind]);
  if (!rc && sql.failed)
    rc = -ENOMEM;
  rc = rc ? rc : run(c, sql.b, &ps);
  params_free(&ps);
  free(sql.b);
  arena_free(&a);
  return rc;
}

/* The same row twice in one upsert is an error ("cannot affect row a
 * second time"), and the last write of a key wins: keep, per key, the
 * last op. A kv key written and deleted in one batch ends as the last op
 * says; spans and kv entries are different tables, so their relative
 * order inside one transaction does not matter. */
struct dedup {
  uint64_t *h;  /* slot -> 1 + op index, 0 = empty */
  size_t mask;
};

static uint64_t op_hash(const struct kt__op *op)
{
  uint64_t h = 1469598103934665603ULL;
  const unsigned char *b;
  size_t n;
  if (op->kind == KT__OP_SPAN) {
    for (int i = 0; i < 16; i++)
      h = (h ^ op->span->trace_id[i]) * 1099511628211ULL;
    h ^= op->span->span_id * 0x9e3779b97f4a7c15ULL;
    return h ^ (uint64_t)op->span->start_us;
  }
  for (int k = 0; k < 2; k++) {
    b = (const unsigned char *)(k ? op->key : op->ns);
    n = strlen((const char *)b);
    for (size_t i = 0; i <= n; i++)
      h = (h ^ b[i]) * 1099511628211ULL;
  }
  return h ^ 1;
}

static int same_key(const struct kt__op *a, const struct kt__op *b)
{
  if ((a->kind == KT__OP_SPAN) != (b->kind == KT__OP_SPAN))
    return 0;
  if (a->kind == KT__OP_SPAN)
    return a->span->span_id == b->span->span_id &&
           a->span->start_us == b->span->start_us &&
           !memcmp(a->span->trace_id, b->span->trace_id, 16);
  return !strcmp(a->ns, b->ns) && !strcmp(a->key, b->key);
}

/* Fills keep[] (1 = the last op of its key) for the n ops. */
static int dedup(struct kt__op *const *ops, size_t n, unsigned char *keep)
{
  size_t cap = 16;
  while (cap < n * 2)
    cap *= 2;
  uint64_t *slot = calloc(cap, sizeof *slot);
  if (!slot)
    return -ENOMEM;
  for (size_t i = n; i-- > 0;) { /* from the end: the first seen is last */
    size_t j = op_hash(ops[i]) & (cap - 1);
    keep[i] = 1;
    while (slot[j]) {
      if (same_key(ops[slot[j] - 1], ops[i])) {
        keep[i] = 0;
        break;
      }
      j = (j + 1) & (cap - 1);
    }
    if (keep[i])
      slot[j] = i + 1;
  }
  free(slot);
  return 0;
}

static int cmp_op(const void *a, const void *b)
{
  const struct kt__op *x = *(struct kt__op *const *)a;
  const struct kt__op *y = *(struct kt__op *const *)b;
  if (x->kind != KT__OP_SPAN) {
    int c = strcmp(x->ns, y->ns);
    return c ? c : strcmp(x->key, y->key);
  }
  int c = memcmp(x->span->trace_id, y->span->trace_id, 16);
  if (c)
    return c;
  if (x->span->span_id != y->span->span_id)
    return x->span->span_id < y->span->span_id ? -1 : 1;
  return x->span->start_us < y->span->start_us ? -1
         : x->span->start_us > y->span->start_us;
}

/* Binary COPY data (the PGCOPY format): big-endian lengths, raw values. */
static void sb_raw(struct sbuf *s, const void *v, size_t n)
{
  if (!s->failed && s->cap - s->len < n) {
    size_t cap = s->cap ? s->cap * 2 : 65536;
    while (cap - s->len < n)
      cap *= 2;
    char *b = realloc(s->b, cap);
    if (!b)
      s->failed = 1;
    else {
      s->b = b;
      s->cap = cap;
    }
  }
  if (s->failed)
    return;
  memcpy(s->b + s->len, v, n);
  s->len += n;
}

static void sb_be(struct sbuf *s, uint32_t v, int bytes)
{
  unsigned char b[4];
  for (int i = 0; i < bytes; i++)
    b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
  sb_raw(s, b, (size_t)bytes);
}

/* Spans go through COPY (binary) into a temporary table, then one upsert
 * from it: measured 30 % faster than a multi-row INSERT of the same
 * batch (docs/internals/store.md). kv rows, few and small, use INSERT. */
static int write_spans_copy(PGconn *c, struct kt__op *const *ops, size_t n)
{
  struct sbuf b = {0};
  struct arena a = {0};
  struct params ps;
  /* The signature, flags and header extension length of PGCOPY. */
  sb_raw(&b, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
  int rc = params_init(&ps, SPAN_NCOLS);
  for (size_t i = 0; i < n && !rc; i++) {
    ps.n = ps.nints = 0;
    rc = add_span_row(&ps, ops[i], &a);
    sb_be(&b, SPAN_NCOLS, 2);
    for (int k = 0; k < ps.n && !rc; k++) {
      sb_be(&b, ps.v[k] ? (uint32_t)ps.len[k] : 0xffffffffu, 4);
      if (ps.v[k])
        sb_raw(&b, ps.v[k], (size_t)ps.len[k]);
    }
  }
  params_free(&ps);
  arena_free(&a);
  sb_be(&b, 0xffff, 2);
  if (!rc && b.failed)
    rc = -ENOMEM;
  rc = rc ? rc : cmd(c, "CREATE TEMP TABLE IF NOT EXISTS kt_in (LIKE spans)"
                        " ON COMMIT DELETE ROWS");
  PGresult *r = rc ? NULL : PQexec(c, "COPY kt_in FROM STDIN (FORMAT binary)");
  int copying = r && PQresultStatus(r) == PGRES_COPY_IN;
  if (!rc && !copying)
    rc = failure(c, r);
  PQclear(r);
  if (copying && (PQputCopyData(c, b.b, (int)b.len) != 1 ||
                  PQputCopyEnd(c, NULL) != 1))
    rc = -ENOTCONN;
  while (copying && (r = PQgetResult(c))) { /* drained in all cases */
    if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) {
      char buf[512];
      kt_error("store: write failed: %s",
               first_line(PQresultErrorMessage(r), buf, sizeof buf));
      rc = failure(c, r);
    }
    PQclear(r);
  }
  free(b.b);
  if (rc)
    return rc;
  struct sbuf sql = {0};
  sb_printf(&sql, "INSERT INTO spans SELECT * FROM kt_in%s", upsert_tail[KT__OP_SPAN]);
  rc = cmd(c, sql.b);
  free(sql.b);
  return rc;
}

/* Writes the kept ops of one kind in statements of ROWS_PER_STMT, in key
 * order: two processes upserting the same rows then lock them in the same
 * order, and cannot deadlock. */
static int write_kind(PGconn *c, enum kt__op_kind kind,
                      struct kt__op *const *ops, const unsigned char *keep,
                      size_t n, struct kt__op **tmp)
{
  size_t m = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    if (keep[i] && ops[i]->kind == kind)
      tmp[m++] = ops[i];
  if (m > 1)
    qsort(tmp, m, sizeof *tmp, cmp_op);
  if (kind == KT__OP_SPAN && m)
    return write_spans_copy(c, tmp, m);
  for (size_t i = 0; i < m && !rc; i += ROWS_PER_STMT)
    rc = write_rows(c, kind, tmp + i, m - i < ROWS_PER_STMT ? m - i
                                                            : ROWS_PER_STMT);
  return rc;
}

/* The partitions the spans need, then one transaction. */
static int write_ops(struct pg *p, struct kt__op *const *ops, size_t n)
{
  unsigned char *keep = malloc(n);
  struct kt__op **tmp = malloc(n * sizeof *tmp);
  int64_t *times = malloc(n * sizeof *times);
  size_t nt = 0;
  int rc = keep && tmp && times ? dedup(ops, n, keep) : -ENOMEM;
  for (size_t i = 0; i < n && !rc; i++)
    if (ops[i]->kind == KT__OP_SPAN)
      times[nt++] = ops[i]->span->start_us;
  rc = rc ? rc : ensure_parts(p, p->w, times, nt);
  rc = rc ? rc : cmd(p->w, "BEGIN");
  for (int k = KT__OP_SPAN; k <= KT__OP_KV_DEL && !rc; k++)
    rc = write_kind(p->w, (enum kt__op_kind)k, ops, keep, n, tmp);
  rc = rc ? rc : cmd(p->w, "COMMIT");
  if (rc && rc != -ENOMEM && PQstatus(p->w) == CONNECTION_OK)
    PQclear(PQexec(p->w, "ROLLBACK"));
  free(keep);
  free(tmp);
  free(times);
  return rc;
}

/* A batch the server refuses for its data: each op alone, so that one
 * bad row costs only itself. 0, or -ENOTCONN / -EAGAIN to retry. */
static int write_each(struct pg *p, struct kt__op *const *ops, size_t n)
{
  size_t lost = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = write_ops(p, &ops[i], 1);
    if (rc == -ENOTCONN)
      return rc;
    if (rc == -EAGAIN)
      return rc;
    lost += rc != 0;
  }
  if (lost) {
    kt_error("store: PostgreSQL refused %zu of %zu writes (logged above); "
             "they are lost", lost, n);
    kt_series_add(kt_metric_series(p->wq.m_lost, NULL), (double)lost);
  }
  return 0;
}

static void note_down(struct pg *p)
{
  int64_t now = kt_mono_us();
  if (!p->down_since) {
    p->down_since = p->down_logged = now;
    p->stalled = 1;
    kt_error("store: PostgreSQL unreachable; writes wait and are retried "
             "until it is back");
  } else if (now - p->down_logged >= DOWN_LOG_EVERY_US) {
    p->down_logged = now;
    kt_error("store: PostgreSQL still unreachable after %lld s; writes "
             "waiting", (long long)((now - p->down_since) / 1000000));
  }
}

static void note_up(struct pg *p)
{
  if (p->down_since)
    kt_info("store: PostgreSQL reachable again after %.1f s; writing",
            (double)(kt_mono_us() - p->down_since) / 1e6);
  p->down_since = 0;
  p->stalled = 0;
}

static int pg_stalled(struct kt_store *b)
{
  return PG(b)->stalled;
}

/* The writer thread's commit: keeps the batch until it is written. A
 * network server usually comes back, unlike a failed local disk, so there
 * is no give-up: ingest stalls meanwhile (docs/decisions.md). */
static void commit_batch(void *ud, struct kt__op *batch, size_t n,
                         size_t spans)
{
  struct pg *p = ud;
  struct kt__op **ops = malloc(n * sizeof *ops);
  int64_t backoff = BACKOFF_MIN_US, t0 = kt_mono_us();
  size_t i = 0;
  while (!ops) { /* nothing to do but wait for memory */
    sleep_us(BACKOFF_MIN_US);
    ops = malloc(n * sizeof *ops);
  }
  for (struct kt__op *op = batch; op; op = op->next)
    ops[i++] = op;
  for (int data_errors = 0;;) {
    int rc;
    const char *what = "write";
    if (!p->w && !(p->w = connect_pg(p->conninfo, 1))) {
      what = "connect";
      rc = -ENOTCONN;
    } else {
      rc = write_ops(p, ops, n);
      if (rc == -EINVAL && ++data_errors >= 2)
        rc = write_each(p, ops, n);
    }
    if (!rc)
      break;
    kt_metric_inc(p->m_errors, NULL);
    count_failure(p, what);
    if (rc == -ENOTCONN) {
      note_down(p);
      PQfinish(p->w);
      p->w = NULL;
    }
    if (rc == -ENOTCONN || rc == -EAGAIN) {
      sleep_us(backoff);
      backoff = backoff * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : backoff * 2;
    } else if (rc == -EINVAL) { /* a partition dropped meanwhile? */
      pthread_mutex_lock(&p->part_mu);
      load_parts(p, p->w);
      pthread_mutex_unlock(&p->part_mu);
    } else {
      sleep_us(BACKOFF_MIN_US); /* -ENOMEM */
    }
  }
  note_up(p);
  free(ops);
  kt_series_add(kt_metric_series(p->m_written, NULL), (double)spans);
  kt_series_observe(p->s_batch, (double)(kt_mono_us() - t0) / 1e6);
}

/* ---- the read pool ---------------------------------------------------- */

/* A connection of the pool for this thread's read, (re)connected if
 * needed; NULL (counted) when the server cannot be reached. */
static PGconn *acquire(struct pg *p, unsigned *slot)
{
  pthread_mutex_lock(&p->pool_mu);
  for (;;) {
    for (unsigned i = 0; i < p->npool; i++)
      if (!p->busy[i]) {
        p->busy[i] = 1;
        *slot = i;
        pthread_mutex_unlock(&p->pool_mu);
        PGconn **c = &p->pool[i];
        if (*c && PQstatus(*c) != CONNECTION_OK) {
          PQfinish(*c);
          *c = NULL;
        }
        if (!*c && !(*c = connect_pg(p->conninfo, 1))) {
          count_failure(p, "connect");
          pthread_mutex_lock(&p->pool_mu);
          p->busy[i] = 0;
          pthread_cond_signal(&p->pool_cv);
          pthread_mutex_unlock(&p->pool_mu);
          return NULL;
        }
        return *c;
      }
    pthread_cond_wait(&p->pool_cv, &p->pool_mu);
  }
}

static void release(struct pg *p, unsigned slot)
{
  pthread_mutex_lock(&p->pool_mu);
  p->busy[slot] = 0;
  pthread_cond_signal(&p->pool_cv);
  pthread_mutex_unlock(&p->pool_mu);
}

/* A read query with binary results. A pooled connection whose server was
 * restarted fails its first query: that one is retried once on a fresh
 * connection. NULL (logged, counted) on failure. */
static PGresult *query(struct pg *p, PGconn **c, unsigned slot,
                       const char *sql, const struct params *ps)
{
  for (int attempt = 0;; attempt++) {
    PGresult *r = PQexecParams(*c, sql, ps ? ps->n : 0, ps ? ps->type : NULL,
                               ps ? ps->v : NULL, ps ? ps->len : NULL,
                               ps ? ps->fmt : NULL, 1);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
      return r;
    int lost = PQstatus(*c) != CONNECTION_OK;
    if (attempt == 0 && lost) {
      PQclear(r);
      PQfinish(*c);
      if ((*c = p->pool[slot] = connect_pg(p->conninfo, 1)))
        continue;
      r = NULL;
    }
    char buf[512];
    kt_error("store: read failed: %s",
             first_line(*c ? PQerrorMessage(*c) : "PostgreSQL unreachable",
                        buf, sizeof buf));
    count_failure(p, "read");
    PQclear(r);
    return NULL;
  }
}

static struct kt_span *row_to_span(const PGresult *r, int i)
{
  struct kt_span *s = kt_span_new(PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
  if (!s)
    return NULL;
  if (PQgetlength(r, i, 0) == 16)
    memcpy(s->trace_id, PQgetvalue(r, i, 0), 16);
  s->span_id = (uint64_t)get_be64(PQgetvalue(r, i, 1));
  s->parent_id = (uint64_t)get_be64(PQgetvalue(r, i, 2));
  s->start_us = get_be64(PQgetvalue(r, i, 5));
  s->end_us = get_be64(PQgetvalue(r, i, 6));
  if (kt__store_decode_body(s, PQgetvalue(r, i, 7),
                            (size_t)PQgetlength(r, i, 7)))
    kt_warn("store: span %016llx has a malformed body",
            (unsigned long long)s->span_id);
  return s;
}

#define SPAN_COLS "trace_id, span_id, parent_id, service, operation, " \
                  "start_us, end_us, body"

static int pg_get_trace(struct kt_store *b, const uint8_t trace_id[16],
                        struct kt_span_vec *out)
{
  struct pg *p = PG(b);
  unsigned slot;
  PGconn *c = acquire(p, &slot);
  if (!c)
    return -EIO;
  struct params ps;
  const char *v[1];
  int len[1], fmt[1];
  Oid type[1];
  ps = (struct params){v, len, fmt, type, NULL, 0, 0, 1};
  p_bin(&ps, BYTEAOID, trace_id, 16);
  size_t before = out->n;
  PGresult *r = query(p, &c, slot, "SELECT " SPAN_COLS " FROM spans"
                      " WHERE trace_id = $1 ORDER BY start_us, span_id", &ps);
  release(p, slot);
  if (!r)
    return -EIO;
  for (int i = 0; i < PQntuples(r); i++) {
    struct kt_span *s = row_to_span(r, i);
    if (!s || kt_span_vec_push(out, s)) {
      kt_span_free(s);
      break;
    }
  }
  PQclear(r);
  return out->n > before ? 0 : -ENOENT;
}

/* ---- search ----------------------------------------------------------- */


static int tags_match(const struct kt_span *s, const struct kt_store_query *q)
{
  for (size_t i = 0; i < q->ntags; i++) {
    const char *v = kt_span_tag(s, q->tags[i].key);
    if (!v || strcmp(v, q->tags[i].value) != 0)
      return 0;
  }
  return 1;
}

/* The search as SQL with its parameters (the same filters as SQLite's). */
static int build_search(const struct kt_store_query *q, struct sbuf *sql,
                        struct params *ps, struct arena *a)
{
  const char *cols[] = {"cluster", "resource", "name", "namespace", "grp",
                        "service"};
  const char *vals[] = {q->cluster, q->resource, q->name, q->namespace,
                        q->group, q->service};
  if (params_init(ps, 10))
    return -ENOMEM;
  sb_printf(sql, "DECLARE kt_search NO SCROLL CURSOR FOR SELECT %s FROM spans"
            " WHERE start_us >= $1 AND start_us <= $2"
            " AND end_us - start_us >= $3 AND end_us - start_us <= $4",
            q->ntags ? SPAN_COLS : "trace_id");
  p_int(ps, q->start_us ? q->start_us : INT64_MIN);
  p_int(ps, q->end_us ? q->end_us : INT64_MAX);
  p_int(ps, q->min_dur_us);
  p_int(ps, q->max_dur_us ? q->max_dur_us : INT64_MAX);
  for (int i = 0; i < 6; i++) {
    if (!vals[i])
      continue;
    const char *v = utf8_clean(vals[i], a);
    if (!v)
      return -ENOMEM;
    p_text(ps, v);
    sb_printf(sql, " AND %s = $%d", cols[i], ps->n);
  }
  sb_printf(sql, " ORDER BY start_us DESC");
  return sql->failed ? -ENOMEM : 0;
}

/* Newest matching spans first, distinct traces until the limit, read
 * through a cursor so that a broad search does not fetch every row. With
 * tag filters, rows are decoded and checked here. */
static int collect(struct pg *p, PGconn **c, unsigned slot,
                   const struct kt_store_query *q, size_t limit,
                   struct kt__refs *refs)
{
  struct sbuf sql = {0};
  struct params ps;
  struct arena a = {0};
  int rc = build_search(q, &sql, &ps, &a);
  PGresult *r = rc ? NULL : query(p, c, slot, "BEGIN READ ONLY", NULL);
  if (!rc && !r)
    rc = -EIO;
  PQclear(r);
  r = rc ? NULL : PQexecParams(*c, sql.b, ps.n, ps.type, ps.v, ps.len, ps.fmt, 1);
  if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) {
    char buf[512];
    kt_error("store: search: %s", first_line(PQerrorMessage(*c), buf, sizeof buf));
    count_failure(p, "read");
    rc = -EIO;
  }
  PQclear(r);
  const char *fetch = q->ntags ? "FETCH 200 FROM kt_search"
                               : "FETCH 2000 FROM kt_search";
  while (!rc && refs->n < limit) {
    r = PQexecParams(*c, fetch, 0, NULL, NULL, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      count_failure(p, "read");
      rc = -EIO;
    }
    int rows = rc ? 0 : PQntuples(r);
    for (int i = 0; i < rows && refs->n < limit && !rc; i++) {
      const char *tid = PQgetvalue(r, i, 0);
      if (PQgetlength(r, i, 0) != 16 || kt__refs_has(refs, tid))
        continue;
      if (q->ntags) {
        struct kt_span *sp = row_to_span(r, i);
        int ok = sp && tags_match(sp, q);
        kt_span_free(sp);
        if (!ok)
          continue;
      }
      rc = kt__refs_add(refs, tid);
    }
    PQclear(r);
    if (!rows)
      break;
  }
  if (PQstatus(*c) == CONNECTION_OK)
    PQclear(PQexec(*c, rc ? "ROLLBACK" : "COMMIT"));
  params_free(&ps);
  free(sql.b);
  arena_free(&a);
  return rc;
}

static void hex16(const uint8_t *id, char *out)
{
  static const char d[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[2 * i] = d[id[i] >> 4];
    out[2 * i + 1] = d[id[i] & 15];
  }
}

static void copy_col(const PGresult *r, int i, int col, const char **out)
{
  *out = PQgetisnull(r, i, col) ? "" : PQgetvalue(r, i, col);
}

/* The root span of each trace, in one query. */
static void fill_roots(struct pg *p, PGconn **c, unsigned slot, struct kt__refs *refs)
{
  char *ids = malloc(refs->n * 33 + 1);
  if (!ids)
    return;
  for (size_t i = 0; i < refs->n; i++) {
    hex16(refs->v[i].trace_id, ids + 33 * i);
    ids[33 * i + 32] = i + 1 < refs->n ? ',' : 0;
  }
  const char *v[1] = {ids};
  int len[1] = {(int)strlen(ids)}, fmt[1] = {1};
  Oid type[1] = {TEXTOID};
  struct params ps = {v, len, fmt, type, NULL, 1, 0, 1};
  PGresult *r = query(p, c, slot,
      "SELECT DISTINCT ON (trace_id) trace_id, span_id, start_us, end_us,"
      " cluster, grp, resource, namespace, name FROM spans"
      " WHERE parent_id = 0 AND trace_id IN"
      " (SELECT decode(x, 'hex') FROM unnest(string_to_array($1, ',')) x)",
      &ps);
  free(ids);
  for (int i = 0; r && i < PQntuples(r); i++) {
    for (size_t j = 0; j < refs->n; j++) {
      struct kt_trace_ref *t = &refs->v[j];
      if (PQgetlength(r, i, 0) != 16 ||
          memcmp(t->trace_id, PQgetvalue(r, i, 0), 16))
        continue;
      const char *k[5];
      for (int col = 0; col < 5; col++)
        copy_col(r, i, 4 + col, &k[col]);
      t->root_span_id = (uint64_t)get_be64(PQgetvalue(r, i, 1));
      t->start_us = get_be64(PQgetvalue(r, i, 2));
      t->end_us = get_be64(PQgetvalue(r, i, 3));
      snprintf(t->object, sizeof t->object, "%s/%s/%s/%s/%s", k[0], k[1],
               k[2], k[3], k[4]);
    }
  }
  PQclear(r);
}

static int pg_find(struct kt_store *b, const struct kt_store_query *q,
                   struct kt_trace_ref **out, size_t *n)
{
  struct pg *p = PG(b);
  struct kt__refs r = {0};
  unsigned slot;
  PGconn *c = acquire(p, &slot);
  if (!c)
    return -EIO;
  int rc = collect(p, &c, slot, q, q->limit ? q->limit : 20, &r);
  if (!rc && r.n)
    fill_roots(p, &c, slot, &r);
  release(p, slot);
  if (rc) {
    free(r.v);
    return rc;
  }
  *out = r.v;
  *n = r.n;
  return 0;
}

/* ---- other reads ------------------------------------------------------ */

/* Runs a one-value query on a pooled connection: the value as an int64,
 * or -EIO. */
static int64_t query_int(struct pg *p, const char *sql, const struct params *ps)
{
  unsigned slot;
  PGconn *c = acquire(p, &slot);
  if (!c)
    return -EIO;
  PGresult *r = query(p, &c, slot, sql, ps);
  release(p, slot);
  int64_t v = r && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8
                  ? get_be64(PQgetvalue(r, 0, 0))
                  : r ? 0 : -EIO;
  PQclear(r);
  return v;
}

static int pg_has_span(struct kt_store *b, const uint8_t trace_id[16],
                       uint64_t span_id, const char *name)
{
  (void)name; /* (trace_id, span_id) is the primary key here */
  const char *v[2];
  int len[2], fmt[2];
  Oid type[2];
  unsigned char ints[8];
  struct params ps = {v, len, fmt, type, ints, 0, 0, 2};
  p_bin(&ps, BYTEAOID, trace_id, 16);
  p_int(&ps, (int64_t)span_id);
  return query_int(PG(b), "SELECT 1::bigint FROM spans"
                   " WHERE trace_id = $1 AND span_id = $2 LIMIT 1", &ps) == 1;
}

static int64_t pg_count(struct kt_store *b)
{
  return query_int(PG(b), "SELECT count(*) FROM spans", NULL);
}

static int pg_clusters(struct kt_store *b,
                       void (*fn)(const char *cluster, void *ud), void *ud)
{
  struct pg *p = PG(b);
  unsigned slot;
  PGconn *c = acquire(p, &slot);
  if (!c)
    return -EIO;
  PGresult *r = query(p, &c, slot, "SELECT DISTINCT cluster FROM spans"
                      " WHERE parent_id = 0 AND cluster IS NOT NULL", NULL);
  release(p, slot);
  for (int i = 0; r && i < PQntuples(r); i++)
    fn(PQgetvalue(r, i, 0), ud);
  PQclear(r);
  return r ? 0 : -EIO;
}

static int pg_kv_get(struct kt_store *b, const char *ns, const char *key,
                     char **val, size_t *len)
{
  struct pg *p = PG(b);
  const char *v[3];
  int l[3], fmt[3];
  Oid type[3];
  unsigned char ints[8];
  struct params ps = {v, l, fmt, type, ints, 0, 0, 3};
  struct arena a = {0};
  const char *cns = utf8_clean(ns, &a), *ckey = utf8_clean(key, &a);
  unsigned slot;
  PGconn *c = cns && ckey ? acquire(p, &slot) : NULL;
  if (!c) {
    arena_free(&a);
    return cns && ckey ? -EIO : -ENOMEM;
  }
  p_text(&ps, cns);
  p_text(&ps, ckey);
  p_int(&ps, kt_now_us());
  PGresult *r = query(p, &c, slot, "SELECT value FROM kv WHERE ns = $1"
                      " AND key = $2 AND (expires_us = 0 OR expires_us > $3)",
                      &ps);
  release(p, slot);
  arena_free(&a);
  int rc = !r ? -EIO : PQntuples(r) ? 0 : -ENOENT;
  if (!rc) {
    size_t n = (size_t)PQgetlength(r, 0, 0);
    *val = malloc(n + 1);
    if (*val) {
      memcpy(*val, PQgetvalue(r, 0, 0), n);
      (*val)[n] = 0;
      *len = n;
    } else {
      rc = -ENOMEM;
    }
  }
  PQclear(r);
  return rc;
}

static int pg_kv_scan(struct kt_store *b, const char *ns,
                      int (*fn)(const char *key, const char *val, size_t len,
                                int64_t expires_us, void *ud),
                      void *ud)
{
  struct pg *p = PG(b);
  const char *v[2];
  int l[2], fmt[2];
  Oid type[2];
  unsigned char ints[8];
  struct params ps = {v, l, fmt, type, ints, 0, 0, 2};
  struct arena a = {0};
  const char *cns = utf8_clean(ns, &a);
  unsigned slot;
  PGconn *c = cns ? acquire(p, &slot) : NULL;
  if (!c) {
    arena_free(&a);
    return cns ? -EIO : -ENOMEM;
  }
  p_text(&ps, cns);
  p_int(&ps, kt_now_us());
  PGresult *r = query(p, &c, slot, "SELECT key, value, expires_us FROM kv"
                      " WHERE ns = $1 AND (expires_us = 0 OR expires_us > $2)",
                      &ps);
  release(p, slot);
  arena_free(&a);
  int rc = r ? 0 : -EIO;
  /* Values are NUL-terminated copies: callers treat them as strings. */
  for (int i = 0; r && i < PQntuples(r) && !rc; i++) {
    size_t n = (size_t)PQgetlength(r, i, 1);
    char *val = malloc(n + 1);
    if (!val) {
      rc = -ENOMEM;
      break;
    }
    memcpy(val, PQgetvalue(r, i, 1), n);
    val[n] = 0;
    rc = fn(PQgetvalue(r, i, 0), val, n, get_be64(PQgetvalue(r, i, 2)), ud);
    free(val);
  }
  PQclear(r);
  return rc;
}

/* ---- retention -------------------------------------------------------- */

/* Drops one partition (under the partition lock, so that a concurrent
 * creation re-reads the catalog); returns its row count or -EIO. */
static int64_t drop_part(struct pg *p, PGconn *c, const struct part *pt)
{
  char sql[192];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)",
           (long long)LOCK_PARTS);
  int rc = cmd(c, "BEGIN");
  rc = rc ? rc : cmd(c, sql);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", pt->name);
  PGresult *r = rc ? NULL : PQexec(c, sql);
  int64_t n = r && PQresultStatus(r) == PGRES_TUPLES_OK
                  ? atoll(PQgetvalue(r, 0, 0)) : -EIO;
  PQclear(r);
  snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", pt->name);
  rc = rc ? rc : n < 0 ? -EIO : cmd(c, sql);
  rc = rc ? rc : cmd(c, "COMMIT");
  if (rc) {
    PQclear(PQexec(c, "ROLLBACK"));
    return -EIO;
  }
  kt_info("store: retention dropped partition %s (%lld spans)", pt->name,
          (long long)n);
  return n;
}

static int64_t pg_retain(struct kt_store *b, int64_t before_us)
{
  struct pg *p = PG(b);
  unsigned slot;
  PGconn *c = acquire(p, &slot);
  if (!c)
    return -EIO;
  int64_t total = 0;
  int rc = ensure_ahead(p, c);
  pthread_mutex_lock(&p->part_mu);
  rc = rc ? rc : load_parts(p, c);
  for (size_t i = 0; !rc && i < p->nparts; i++) {
    if (p->parts[i].to > before_us)
      continue;
    int64_t n = drop_part(p, c, &p->parts[i]);
    if (n < 0)
      rc = -EIO;
    else
      total += n;
  }
  if (!rc)
    rc = load_parts(p, c);
  pthread_mutex_unlock(&p->part_mu);
  char sql[128];
  snprintf(sql, sizeof sql, "DELETE FROM kv WHERE expires_us <> 0"
           " AND expires_us < %lld", (long long)kt_now_us());
  if (!rc)
    rc = cmd(c, sql);
  release(p, slot);
  if (rc)
    count_failure(p, "retain");
  return rc ? -EIO : total;
}

/* ---- open / close ----------------------------------------------------- */

static void pg_close(struct kt_store *b)
{
  struct pg *p = PG(b);
  kt__wq_stop(&p->wq);
  PQfinish(p->w);
  for (unsigned i = 0; i < p->npool; i++)
    PQfinish(p->pool[i]);
  free(p->pool);
  free(p->busy);
  free(p->parts);
  free(p->conninfo);
  pthread_mutex_destroy(&p->part_mu);
  pthread_mutex_destroy(&p->pool_mu);
  pthread_cond_destroy(&p->pool_cv);
  free(p);
}

static const struct kt_store_ops pg_ops = {
    .name = "postgres", .close = pg_close,
    .get_trace = pg_get_trace, .find = pg_find,
    .retain = pg_retain, .has_span = pg_has_span, .clusters = pg_clusters,
    .count = pg_count, .kv_get = pg_kv_get, .kv_scan = pg_kv_scan,
    .stalled = pg_stalled,
};

static void register_metrics(struct pg *p)
{
  struct kt_metrics *r = kt_metrics_default();
  static const char *const labels[] = {"backend", "op", NULL};
  p->m_written = kt_metrics_counter(r, "store_spans_written_total",
      "Spans committed to the store", NULL);
  p->m_errors = kt_metrics_counter(r, "store_write_errors_total",
      "Failed store transactions (retried)", NULL);
  p->m_failures = kt_metrics_counter(r, "store_errors_total",
      "Failed store operations of a server backend, by operation "
      "(connect, write, read, retain)", labels);
  p->s_batch = kt_metric_series(kt_metrics_histogram(r,
      "store_commit_seconds", "Duration of one group commit", NULL, NULL, 0),
      NULL);
}

int kt_store_open_postgres(const char *conninfo, const struct kt_store_opts *o,
                           struct kt_store **out)
{
  struct pg *p = calloc(1, sizeof *p);
  if (!p)
    return -ENOMEM;
  p->base.ops = &pg_ops;
  p->base.wq = &p->wq;
  p->part_us = o && o->partition_us > 0 ? o->partition_us : 86400000000LL;
  p->npool = o && o->pool ? o->pool : 4;
  p->conninfo = strdup(conninfo);
  p->pool = calloc(p->npool, sizeof *p->pool);
  p->busy = calloc(p->npool, 1);
  pthread_mutex_init(&p->part_mu, NULL);
  pthread_mutex_init(&p->pool_mu, NULL);
  pthread_cond_init(&p->pool_cv, NULL);
  int rc = p->conninfo && p->pool && p->busy ? 0 : -ENOMEM;
  if (!rc && !(p->w = connect_pg(conninfo, 0)))
    rc = -EIO;
  rc = rc ? rc : migrate(p->w);
  rc = rc ? rc : ensure_ahead(p, p->w) ? -EIO : 0;
  if (!rc) {
    register_metrics(p);
    rc = kt__wq_start(&p->wq, o, commit_batch, p, "kt-pg-writer");
  }
  if (rc) {
    kt_error("store: PostgreSQL store not usable (%s)", strerror(-rc));
    PQfinish(p->w);
    free(p->pool);
    free(p->busy);
    free(p->conninfo);
    free(p->parts);
    pthread_mutex_destroy(&p->part_mu);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_cond_destroy(&p->pool_cv);
    free(p);
    return rc;
  }
  *out = &p->base;
  return 0;
}
