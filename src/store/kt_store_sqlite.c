/* kt_store_sqlite: the embedded span store (see kt_store.h).
 *
 * The shared writer queue (kt_store_backend.h) hands batches to
 * commit_with_retry, which owns the write connection and commits a batch
 * in one transaction (group commit): a partial batch waits up to 5 ms
 * for more unless a flush is waiting. A third connection, on its own
 * thread, checkpoints the WAL. SQLite allows
 * one writer at a time anyway, so a single thread with reused prepared
 * statements is the fastest shape. Readers use their own connection; WAL
 * lets them run during writes.
 *
 * A span row keeps the key tags in columns (indexed for searches) and all
 * tags and logs in the body encoded by kt_store.c.
 *
 * Indexes: every random-keyed index costs each insert a leaf page of its
 * own (~3 us of CPU per span, measured), so spans have one: spans_key,
 * (trace id, name, span id), which fetches a trace, finds one object's
 * spans in it and makes puts idempotent. Searches naming an object go
 * through its `object` spans, one per window (spans_windows, a partial
 * index), then spans_key; schema 1 indexed every span by object as well. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "store/kt_store_backend.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

#define SCHEMA_VERSION 2

struct sq {
  struct kt_store base;
  struct kt__wq wq;
  sqlite3 *wdb, *rdb;
  /* The checkpointer: its own connection and thread, woken by the
   * writer's WAL hook (see wal_hook). */
  sqlite3 *cdb;
  pthread_t ckpt;
  pthread_mutex_t cmu;
  pthread_cond_t cwake;
  int ckpt_running, ckpt_due, ckpt_stop;
  int wal_soft, wal_hard; /* WAL frames: wake the checkpointer; do it here */
  pthread_mutex_t rmu; /* the read connection */
  sqlite3_stmt *ins_span, *ins_kv, *del_kv;
  /* On rdb, under rmu, asked per event (a replay's duplicate check, the
   * span cache's misses): prepared once. */
  sqlite3_stmt *has_span, *has_span_any, *kv_get;
  struct kt_metric *m_written, *m_errors;
  struct kt_series *s_batch;
};

#define SQ(b) ((struct sq *)(b))
#define KEY_NAME 4 /* kt__store_key_tags[4], the name column */

static const char *schema =
    /* A rowid table: span bodies are kilobytes, which WITHOUT ROWID
     * b-trees handle badly. */
    "CREATE TABLE IF NOT EXISTS spans("
    " trace_id BLOB NOT NULL, span_id INTEGER NOT NULL,"
    " parent_id INTEGER NOT NULL, service TEXT NOT NULL,"
    " operation TEXT NOT NULL, start_us INTEGER NOT NULL,"
    " end_us INTEGER NOT NULL, cluster TEXT, grp TEXT, resource TEXT,"
    " namespace TEXT, name TEXT, body BLOB NOT NULL);"
    /* A span's name never changes, so it can sit in the unique key (a
     * span without one has ''). */
    "CREATE UNIQUE INDEX IF NOT EXISTS spans_key ON spans(trace_id, name, span_id);"
    "CREATE INDEX IF NOT EXISTS spans_windows ON spans"
    " (cluster, resource, name, namespace, end_us) WHERE service = 'object';"
    "CREATE INDEX IF NOT EXISTS spans_resource ON spans (cluster, resource, start_us);"
    "CREATE INDEX IF NOT EXISTS spans_roots ON spans(end_us) WHERE parent_id = 0;"
    "CREATE TABLE IF NOT EXISTS kv(ns TEXT NOT NULL, key TEXT NOT NULL,"
    " value BLOB NOT NULL, expires_us INTEGER NOT NULL,"
    " PRIMARY KEY(ns, key)) WITHOUT ROWID;"
    /* schema 1's */
    "DROP INDEX IF EXISTS spans_id;"
    "DROP INDEX IF EXISTS spans_object;";

/* ---- open ------------------------------------------------------------- */

static int exec(sqlite3 *db, const char *sql)
{
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) {
    kt_error("store: %s", err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return -EIO;
  }
  return 0;
}

static int open_conn(const char *path, sqlite3 **db)
{
  int rc = sqlite3_open_v2(path, db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    kt_error("store: cannot open %s: %s", path, sqlite3_errstr(rc));
    return -EIO;
  }
  sqlite3_busy_timeout(*db, 10000);
  /* wal_autocheckpoint matters only for the read connection's retention
   * deletes: the writer's WAL hook replaces it (see start_checkpointer). */
  return exec(*db, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                   "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-65536;"
                   "PRAGMA wal_autocheckpoint=16384;");
}

static int check_schema(sqlite3 *db, const char *path)
{
  sqlite3_stmt *st;
  int version = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version > SCHEMA_VERSION) {
    kt_error("store: %s has schema version %d, newer than this build's %d",
             path, version, SCHEMA_VERSION);
    return -EPROTO;
  }
  if (version == 1)
    kt_info("store: %s: building schema 2's indexes (once; a minute per "
            "~10 million spans)", path);
  /* In one transaction: a migration cut short leaves schema 1 whole. */
  if (exec(db, "BEGIN") || exec(db, schema) ||
      exec(db, "PRAGMA user_version = 2") || exec(db, "COMMIT")) {
    exec(db, "ROLLBACK");
    return -EIO;
  }
  return 0;
}

static int prepare(struct sq *st)
{
  /* An upsert rewrites a redelivered span in place; INSERT OR REPLACE
   * deleted the row and its 4 index entries and inserted them again, under
   * a statement journal: 7 % more writer CPU and ~25 % more bytes. */
  int rc = sqlite3_prepare_v2(st->wdb,
      "INSERT INTO spans VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"
      " ON CONFLICT(trace_id, name, span_id) DO UPDATE SET"
      " parent_id = excluded.parent_id, service = excluded.service,"
      " operation = excluded.operation, start_us = excluded.start_us,"
      " end_us = excluded.end_us, cluster = excluded.cluster, grp = excluded.grp,"
      " resource = excluded.resource, namespace = excluded.namespace,"
      " name = excluded.name, body = excluded.body", -1, &st->ins_span, NULL);
  rc = rc ? rc : sqlite3_prepare_v2(st->wdb,
      "INSERT OR REPLACE INTO kv VALUES(?,?,?,?)", -1, &st->ins_kv, NULL);
  rc = rc ? rc : sqlite3_prepare_v2(st->wdb,
      "DELETE FROM kv WHERE ns = ? AND key = ?", -1, &st->del_kv, NULL);
  rc = rc ? rc : sqlite3_prepare_v2(st->rdb,
      "SELECT 1 FROM spans WHERE trace_id = ? AND span_id = ? AND name = ?",
      -1, &st->has_span, NULL);
  rc = rc ? rc : sqlite3_prepare_v2(st->rdb,
      "SELECT 1 FROM spans WHERE trace_id = ? AND span_id = ?", -1,
      &st->has_span_any, NULL);
  rc = rc ? rc : sqlite3_prepare_v2(st->rdb,
      "SELECT value FROM kv WHERE ns = ? AND key = ?"
      " AND (expires_us = 0 OR expires_us > ?)", -1, &st->kv_get, NULL);
  return rc == SQLITE_OK ? 0 : -EIO;
}

static void register_metrics(struct sq *st)
{
  struct kt_metrics *r = kt_metrics_default();
  st->m_written = kt_metrics_counter(r, "store_spans_written_total",
      "Spans committed to the store", NULL);
  st->m_errors = kt_metrics_counter(r, "store_write_errors_total",
      "Failed store transactions (retried)", NULL);
  st->s_batch = kt_metric_series(kt_metrics_histogram(r,
      "store_commit_seconds", "Duration of one group commit", NULL, NULL, 0),
      NULL);
}

/* ---- writer ----------------------------------------------------------- */

static int run(sqlite3_stmt *q)
{
  int rc = sqlite3_step(q);
  sqlite3_reset(q);
  return rc == SQLITE_DONE ? 0 : -EIO;
}

static int write_span(struct sq *st, const struct kt__op *op)
{
  const struct kt__row *r = op->row;
  sqlite3_stmt *q = st->ins_span;
  sqlite3_bind_blob(q, 1, r->trace_id, 16, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, (sqlite3_int64)r->span_id);
  sqlite3_bind_int64(q, 3, (sqlite3_int64)r->parent_id);
  sqlite3_bind_text(q, 4, r->service, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 5, r->operation, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 6, r->start_us);
  sqlite3_bind_int64(q, 7, r->end_us);
  for (int i = 0; i < 5; i++) {
    if (r->key[i] || i == KEY_NAME) /* name: part of the unique key */
      sqlite3_bind_text(q, 8 + i, r->key[i] ? r->key[i] : "", -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(q, 8 + i);
  }
  sqlite3_bind_blob(q, 13, op->body, (int)op->body_len, SQLITE_STATIC);
  return run(q);
}

static int write_kv(struct sq *st, const struct kt__op *op)
{
  sqlite3_stmt *q = op->kind == KT__OP_KV_PUT ? st->ins_kv : st->del_kv;
  sqlite3_bind_text(q, 1, op->ns, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, op->key, -1, SQLITE_STATIC);
  if (op->kind == KT__OP_KV_PUT) {
    sqlite3_bind_blob(q, 3, op->val, (int)op->len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, op->expires_us);
  }
  return run(q);
}

/* Multi-row upserts (16 spans per statement) were measured: 25 % more
 * writer CPU than one statement per span (SQLite stages such an insert). */
static int write_ops(struct sq *st, struct kt__op *batch)
{
  for (struct kt__op *op = batch; op; op = op->next)
    if (op->kind == KT__OP_SPAN ? write_span(st, op) : write_kv(st, op))
      return -EIO;
  return 0;
}

static int commit_batch(struct sq *st, struct kt__op *batch)
{
  if (exec(st->wdb, "BEGIN"))
    return -EIO;
  if (write_ops(st, batch)) {
    kt_error("store: write failed: %s", sqlite3_errmsg(st->wdb));
    exec(st->wdb, "ROLLBACK");
    return -EIO;
  }
  return exec(st->wdb, "COMMIT");
}

/* The writer thread's commit: retries a failed batch a few times (a full
 * disk may be freed, a lock released) before giving the writes up, loudly:
 * a local disk that fails for 1.5 s rarely heals by itself. */
static void commit_with_retry(void *ud, struct kt__op *batch, size_t n,
                              size_t spans)
{
  struct sq *st = ud;
  int64_t t0 = kt_mono_us();
  for (int attempt = 0; attempt < 5; attempt++) {
    if (commit_batch(st, batch) == 0) {
      kt_series_add(kt_metric_series(st->m_written, NULL), (double)spans);
      kt_series_observe(st->s_batch, (double)(kt_mono_us() - t0) / 1e6);
      return;
    }
    kt_metric_inc(st->m_errors, NULL);
    struct timespec ts = {0, (long)(50000000L << attempt)};
    nanosleep(&ts, NULL);
  }
  kt_error("store: giving up %zu writes after repeated failures: %s", n,
           sqlite3_errmsg(st->wdb));
  kt_series_add(kt_metric_series(st->wq.m_lost, NULL), (double)n);
  kt__wq_set_failed(&st->wq);
}

/* ---- checkpoints -------------------------------------------------------
 * Copying WAL frames back into the database file cost the writer thread
 * whole seconds at a time when it ran on commit (wal_autocheckpoint). A
 * PASSIVE checkpoint from another connection runs beside the writer (it
 * takes no lock the writer needs), so a thread of its own does it once
 * the WAL holds wal_soft frames. Should it fall behind (a writer that
 * never pauses, a stuck thread), the writer checkpoints itself at
 * wal_hard, so the WAL stays bounded as before. */

#define WAL_SOFT_BYTES (256LL << 20)

static void *ckpt_main(void *arg)
{
  struct sq *st = arg;
  pthread_mutex_lock(&st->cmu);
  for (;;) {
    while (!st->ckpt_due && !st->ckpt_stop)
      pthread_cond_wait(&st->cwake, &st->cmu);
    if (st->ckpt_stop)
      break;
    st->ckpt_due = 0;
    pthread_mutex_unlock(&st->cmu);
    int rc = sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
      kt_warn("store: checkpoint failed: %s", sqlite3_errmsg(st->cdb));
    pthread_mutex_lock(&st->cmu);
  }
  pthread_mutex_unlock(&st->cmu);
  return NULL;
}

/* Called by SQLite in the writer thread after each commit. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames)
{
  struct sq *st = ud;
  if (frames >= st->wal_hard) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  } else if (frames >= st->wal_soft) {
    pthread_mutex_lock(&st->cmu);
    st->ckpt_due = 1;
    pthread_cond_signal(&st->cwake);
    pthread_mutex_unlock(&st->cmu);
  }
  return SQLITE_OK;
}

static int start_checkpointer(struct sq *st, const char *path,
                              int64_t wal_bytes)
{
  sqlite3_stmt *q;
  int page = 4096;
  if (sqlite3_prepare_v2(st->wdb, "PRAGMA page_size", -1, &q, NULL) == SQLITE_OK &&
      sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) > 0)
    page = sqlite3_column_int(q, 0);
  sqlite3_finalize(q);
  st->wal_soft = (int)((wal_bytes > 0 ? wal_bytes : WAL_SOFT_BYTES) / page);
  st->wal_hard = 2 * st->wal_soft;
  int rc = open_conn(path, &st->cdb);
  if (rc)
    return rc;
  rc = pthread_create(&st->ckpt, NULL, ckpt_main, st);
  if (rc) {
    kt_error("store: cannot start the checkpoint thread: %s", strerror(rc));
    return -EAGAIN;
  }
  pthread_setname_np(st->ckpt, "kt-ckpt");
  st->ckpt_running = 1;
  sqlite3_wal_hook(st->wdb, wal_hook, st); /* replaces wal_autocheckpoint */
  return 0;
}

static void stop_checkpointer(struct sq *st)
{
  if (!st->ckpt_running)
    return;
  pthread_mutex_lock(&st->cmu);
  st->ckpt_stop = 1;
  pthread_cond_signal(&st->cwake);
  pthread_mutex_unlock(&st->cmu);
  pthread_join(st->ckpt, NULL);
  st->ckpt_running = 0;
}

/* Frees what open made; the writer is stopped (or never started). */
static void sq_free(struct sq *st)
{
  stop_checkpointer(st);
  sqlite3_finalize(st->ins_span);
  sqlite3_finalize(st->ins_kv);
  sqlite3_finalize(st->del_kv);
  sqlite3_finalize(st->has_span);
  sqlite3_finalize(st->has_span_any);
  sqlite3_finalize(st->kv_get);
  sqlite3_close(st->wdb);
  sqlite3_close(st->cdb);
  sqlite3_close(st->rdb);
  pthread_mutex_destroy(&st->rmu);
  pthread_mutex_destroy(&st->cmu);
  pthread_cond_destroy(&st->cwake);
  free(st);
}

static void sq_close(struct kt_store *b)
{
  struct sq *st = SQ(b);
  kt__wq_stop(&st->wq);
  sq_free(st);
}

/* ---- reads ------------------------------------------------------------ */

static struct kt_span *row_to_span(sqlite3_stmt *q)
{
  struct kt_span *s = kt_span_new((const char *)sqlite3_column_text(q, 3),
                                  (const char *)sqlite3_column_text(q, 4));
  if (!s)
    return NULL;
  const void *tid = sqlite3_column_blob(q, 0);
  if (tid && sqlite3_column_bytes(q, 0) == 16)
    memcpy(s->trace_id, tid, 16);
  s->span_id = (uint64_t)sqlite3_column_int64(q, 1);
  s->parent_id = (uint64_t)sqlite3_column_int64(q, 2);
  s->start_us = sqlite3_column_int64(q, 5);
  s->end_us = sqlite3_column_int64(q, 6);
  if (kt__store_decode_body(s, sqlite3_column_blob(q, 7),
                  (size_t)sqlite3_column_bytes(q, 7)))
    kt_warn("store: span %016llx has a malformed body",
            (unsigned long long)s->span_id);
  return s;
}

#define SPAN_COLS "trace_id, span_id, parent_id, service, operation, " \
                  "start_us, end_us, body"

static int sq_get_trace(struct kt_store *b, const uint8_t trace_id[16],
                       struct kt_span_vec *out)
{
  struct sq *st = SQ(b);
  sqlite3_stmt *q;
  size_t before = out->n;
  pthread_mutex_lock(&st->rmu);
  int rc = sqlite3_prepare_v2(st->rdb,
      "SELECT " SPAN_COLS " FROM spans WHERE trace_id = ?"
      " ORDER BY start_us, span_id", -1, &q, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_blob(q, 1, trace_id, 16, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
      struct kt_span *s = row_to_span(q);
      if (!s || kt_span_vec_push(out, s)) {
        kt_span_free(s);
        break;
      }
    }
  }
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->rmu);
  return out->n > before ? 0 : -ENOENT;
}

struct sql {
  char text[1024];
  size_t len;
  const char *binds[8];
  int nbind;
};

static void where_eq(struct sql *s, const char *col, const char *val)
{
  if (!val)
    return;
  s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len,
                             " AND %s = ?", col);
  s->binds[s->nbind++] = val;
}

/* The object's columns the query names. */
static void where_object(struct sql *s, const struct kt_store_query *q)
{
  where_eq(s, "cluster", q->cluster);
  where_eq(s, "resource", q->resource);
  where_eq(s, "name", q->name);
  where_eq(s, "namespace", q->namespace);
  where_eq(s, "grp", q->group);
}

/* Builds the WHERE clause of a span search (its 4 leading parameters are
 * bound by bind_where). */
static void build_where(struct sql *s, const struct kt_store_query *q)
{
  s->len += (size_t)snprintf(s->text + s->len, sizeof s->text - s->len,
                             " AND start_us >= ? AND start_us <= ?"
                             " AND end_us - start_us >= ? AND end_us - start_us <= ?");
  where_object(s, q);
  where_eq(s, "service", q->service);
}

/* first: the number of the first parameter build_where added. */
static void bind_where(sqlite3_stmt *st, const struct sql *s,
                       const struct kt_store_query *q, int first)
{
  sqlite3_bind_int64(st, first, q->start_us ? q->start_us : INT64_MIN);
  sqlite3_bind_int64(st, first + 1, q->end_us ? q->end_us : INT64_MAX);
  sqlite3_bind_int64(st, first + 2, q->min_dur_us);
  sqlite3_bind_int64(st, first + 3, q->max_dur_us ? q->max_dur_us : INT64_MAX);
  for (int i = 0; i < s->nbind; i++)
    sqlite3_bind_text(st, first + 4 + i, s->binds[i], -1, SQLITE_STATIC);
}

static int tags_match(const struct kt_span *s, const struct kt_store_query *q)
{
  for (size_t i = 0; i < q->ntags; i++) {
    const char *v = kt_span_tag(s, q->tags[i].key);
    if (!v || strcmp(v, q->tags[i].value) != 0)
      return 0;
  }
  return 1;
}


static sqlite3_stmt *prepare_search(struct sq *st, const struct sql *s)
{
  sqlite3_stmt *stmt;
  if (sqlite3_prepare_v2(st->rdb, s->text, -1, &stmt, NULL) == SQLITE_OK)
    return stmt;
  kt_error("store: search: %s", sqlite3_errmsg(st->rdb));
  return NULL;
}

/* Whether the row (SPAN_COLS) has every tag the query asks for. */
static int row_tags_match(sqlite3_stmt *stmt, const struct kt_store_query *q)
{
  struct kt_span *sp = row_to_span(stmt);
  int ok = sp && tags_match(sp, q);
  kt_span_free(sp);
  return ok;
}

/* Any span search: newest matching spans first, distinct traces until
 * the limit. With tag filters, rows are decoded and checked here. */
static int collect_spans(struct sq *st, const struct kt_store_query *q,
                         size_t limit, struct kt__refs *r)
{
  struct sql s = {.len = 0};
  s.len = (size_t)snprintf(s.text, sizeof s.text, "SELECT %s FROM spans WHERE 1",
                           q->ntags ? SPAN_COLS : "trace_id");
  build_where(&s, q);
  snprintf(s.text + s.len, sizeof s.text - s.len, " ORDER BY start_us DESC");
  sqlite3_stmt *stmt = prepare_search(st, &s);
  if (!stmt)
    return -EIO;
  bind_where(stmt, &s, q, 1);
  int rc = 0;
  while (r->n < limit && sqlite3_step(stmt) == SQLITE_ROW) {
    const void *tid = sqlite3_column_blob(stmt, 0);
    if (!tid || sqlite3_column_bytes(stmt, 0) != 16 || kt__refs_has(r, tid) ||
        (q->ntags && !row_tags_match(stmt, q)))
      continue;
    if ((rc = kt__refs_add(r, tid)))
      break;
  }
  sqlite3_finalize(stmt);
  return rc;
}

/* Whether trace tid has a span of the query's object matching it all (s:
 * the statement's text without the name, which is bound second). */
static int window_matches(sqlite3_stmt *in, const struct sql *s,
                          const struct kt_store_query *q, const void *tid)
{
  int found = 0;
  sqlite3_bind_blob(in, 1, tid, 16, SQLITE_TRANSIENT);
  sqlite3_bind_text(in, 2, q->name, -1, SQLITE_STATIC);
  bind_where(in, s, q, 3);
  while (!found && sqlite3_step(in) == SQLITE_ROW)
    found = !q->ntags || row_tags_match(in, q);
  sqlite3_reset(in);
  return found;
}

/* A search naming an object (cluster, resource, name): every span of an
 * object is in the trace of the object's `object` span for its window
 * (the aggregator puts it there), so its windows are listed, newest first
 * (spans_windows), and each window's trace is searched for the object's
 * matching spans (spans_key). A window [start, end) can hold spans that
 * start in the range only if it ends after the range's start and starts
 * before its end. */
static int collect_windows(struct sq *st, const struct kt_store_query *q,
                           size_t limit, struct kt__refs *r)
{
  struct sql w = {.len = 0}, s = {.len = 0};
  w.len = (size_t)snprintf(w.text, sizeof w.text,
      "SELECT trace_id FROM spans INDEXED BY spans_windows"
      " WHERE service = 'object' AND end_us >= ?1 AND start_us <= ?2");
  where_object(&w, q);
  snprintf(w.text + w.len, sizeof w.text - w.len, " ORDER BY end_us DESC");
  s.len = (size_t)snprintf(s.text, sizeof s.text,
      "SELECT %s FROM spans INDEXED BY spans_key WHERE trace_id = ? AND name = ?",
      q->ntags ? SPAN_COLS : "trace_id");
  struct kt_store_query nameless = *q;
  nameless.name = NULL; /* bound second, above */
  build_where(&s, &nameless);
  sqlite3_stmt *wins = prepare_search(st, &w), *in = wins ? prepare_search(st, &s) : NULL;
  if (!in) {
    sqlite3_finalize(wins);
    return -EIO;
  }
  sqlite3_bind_int64(wins, 1, q->start_us ? q->start_us : INT64_MIN);
  sqlite3_bind_int64(wins, 2, q->end_us ? q->end_us : INT64_MAX);
  for (int i = 0; i < w.nbind; i++)
    sqlite3_bind_text(wins, 3 + i, w.binds[i], -1, SQLITE_STATIC);
  int rc = 0;
  while (!rc && r->n < limit && sqlite3_step(wins) == SQLITE_ROW) {
    const void *tid = sqlite3_column_blob(wins, 0);
    if (tid && sqlite3_column_bytes(wins, 0) == 16 && !kt__refs_has(r, tid) &&
        window_matches(in, &s, q, tid))
      rc = kt__refs_add(r, tid);
  }
  sqlite3_finalize(in);
  sqlite3_finalize(wins);
  return rc;
}

static int collect(struct sq *st, const struct kt_store_query *q,
                   size_t limit, struct kt__refs *r)
{
  return q->cluster && q->resource && q->name
             ? collect_windows(st, q, limit, r)
             : collect_spans(st, q, limit, r);
}

static void fill_roots(struct sq *st, struct kt__refs *r)
{
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(st->rdb,
          "SELECT span_id, start_us, end_us, cluster, grp, resource,"
          " namespace, name FROM spans"
          " WHERE trace_id = ? AND parent_id = 0 LIMIT 1", -1, &q, NULL))
    return;
  for (size_t i = 0; i < r->n; i++) {
    sqlite3_bind_blob(q, 1, r->v[i].trace_id, 16, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) {
      r->v[i].root_span_id = (uint64_t)sqlite3_column_int64(q, 0);
      r->v[i].start_us = sqlite3_column_int64(q, 1);
      r->v[i].end_us = sqlite3_column_int64(q, 2);
      snprintf(r->v[i].object, sizeof r->v[i].object, "%s/%s/%s/%s/%s",
               sqlite3_column_text(q, 3) ? (const char *)sqlite3_column_text(q, 3) : "",
               sqlite3_column_text(q, 4) ? (const char *)sqlite3_column_text(q, 4) : "",
               sqlite3_column_text(q, 5) ? (const char *)sqlite3_column_text(q, 5) : "",
               sqlite3_column_text(q, 6) ? (const char *)sqlite3_column_text(q, 6) : "",
               sqlite3_column_text(q, 7) ? (const char *)sqlite3_column_text(q, 7) : "");
    }
    sqlite3_reset(q);
  }
  sqlite3_finalize(q);
}

static int sq_find(struct kt_store *b, const struct kt_store_query *q,
                  struct kt_trace_ref **out, size_t *n)
{
  struct sq *st = SQ(b);
  struct kt__refs r = {0};
  size_t limit = q->limit ? q->limit : 20;
  pthread_mutex_lock(&st->rmu);
  int rc = collect(st, q, limit, &r);
  if (!rc)
    fill_roots(st, &r);
  pthread_mutex_unlock(&st->rmu);
  if (rc) {
    free(r.v);
    return rc;
  }
  *out = r.v;
  *n = r.n;
  return 0;
}

static int64_t exec_count(sqlite3 *db, const char *sql, int64_t arg)
{
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
    return -EIO;
  sqlite3_bind_int64(q, 1, arg);
  int rc = sqlite3_step(q);
  int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0)
              : rc == SQLITE_DONE ? sqlite3_changes(db) : -EIO;
  sqlite3_finalize(q);
  return v;
}

/* Runs on the read connection under its lock; the writer may wait on
 * SQLite's busy timeout meanwhile, which is fine for a periodic job. */
static int64_t sq_retain(struct kt_store *b, int64_t before_us)
{
  struct sq *st = SQ(b);
  pthread_mutex_lock(&st->rmu);
  int64_t n = exec_count(st->rdb,
      "DELETE FROM spans WHERE trace_id IN (SELECT trace_id FROM spans"
      " WHERE parent_id = 0 AND end_us < ?1)", before_us);
  exec_count(st->rdb, "DELETE FROM kv WHERE expires_us != 0 AND expires_us < ?1",
             kt_now_us());
  pthread_mutex_unlock(&st->rmu);
  return n;
}

static int sq_has_span(struct kt_store *b, const uint8_t trace_id[16],
                      uint64_t span_id, const char *name)
{
  struct sq *st = SQ(b);
  sqlite3_stmt *q = name ? st->has_span : st->has_span_any;
  pthread_mutex_lock(&st->rmu);
  sqlite3_bind_blob(q, 1, trace_id, 16, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, (sqlite3_int64)span_id);
  if (name)
    sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
  int found = sqlite3_step(q) == SQLITE_ROW;
  sqlite3_reset(q);
  pthread_mutex_unlock(&st->rmu);
  return found;
}

static int sq_clusters(struct kt_store *b,
                      void (*fn)(const char *cluster, void *ud), void *ud)
{
  struct sq *st = SQ(b);
  sqlite3_stmt *q;
  pthread_mutex_lock(&st->rmu);
  int rc = sqlite3_prepare_v2(st->rdb,
      "SELECT DISTINCT cluster FROM spans WHERE parent_id = 0", -1, &q, NULL);
  while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
    if (sqlite3_column_text(q, 0))
      fn((const char *)sqlite3_column_text(q, 0), ud);
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->rmu);
  return rc == SQLITE_OK ? 0 : -EIO;
}

static int64_t sq_count(struct kt_store *b)
{
  struct sq *st = SQ(b);
  pthread_mutex_lock(&st->rmu);
  int64_t n = exec_count(st->rdb, "SELECT count(*) FROM spans WHERE ?1 = ?1", 0);
  pthread_mutex_unlock(&st->rmu);
  return n;
}

static int sq_kv_get(struct kt_store *b, const char *ns, const char *key,
                    char **val, size_t *len)
{
  struct sq *st = SQ(b);
  sqlite3_stmt *q = st->kv_get;
  int rc = -ENOENT;
  pthread_mutex_lock(&st->rmu);
  sqlite3_bind_text(q, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text(q, 2, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 3, kt_now_us());
  if (sqlite3_step(q) == SQLITE_ROW) {
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    *val = malloc(n + 1);
    if (*val) {
      if (n)
        memcpy(*val, sqlite3_column_blob(q, 0), n);
      (*val)[n] = 0;
      *len = n;
      rc = 0;
    } else {
      rc = -ENOMEM;
    }
  }
  sqlite3_reset(q);
  pthread_mutex_unlock(&st->rmu);
  return rc;
}

static int sq_kv_scan(struct kt_store *b, const char *ns,
                     int (*fn)(const char *key, const char *val, size_t len,
                               int64_t expires_us, void *ud),
                     void *ud)
{
  struct sq *st = SQ(b);
  sqlite3_stmt *q;
  int rc = 0;
  pthread_mutex_lock(&st->rmu);
  if (sqlite3_prepare_v2(st->rdb,
          "SELECT key, value, expires_us FROM kv WHERE ns = ?"
          " AND (expires_us = 0 OR expires_us > ?)", -1, &q, NULL) != SQLITE_OK) {
    pthread_mutex_unlock(&st->rmu);
    return -EIO;
  }
  sqlite3_bind_text(q, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_int64(q, 2, kt_now_us());
  while (!rc && sqlite3_step(q) == SQLITE_ROW)
    rc = fn((const char *)sqlite3_column_text(q, 0),
            (const char *)sqlite3_column_blob(q, 1),
            (size_t)sqlite3_column_bytes(q, 1), sqlite3_column_int64(q, 2), ud);
  sqlite3_finalize(q);
  pthread_mutex_unlock(&st->rmu);
  return rc;
}

static const struct kt_store_ops sqlite_ops = {
    .name = "sqlite", .close = sq_close,
    .get_trace = sq_get_trace, .find = sq_find,
    .retain = sq_retain, .has_span = sq_has_span, .clusters = sq_clusters,
    .count = sq_count, .kv_get = sq_kv_get, .kv_scan = sq_kv_scan,
};

/* SQLite's memory statistics take a global mutex around every malloc
 * (~10 per written span); nothing here reads them. Only possible before
 * SQLite initializes, hence once, before the first open. */
static void configure_sqlite(void)
{
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int kt_store_open_sqlite(const char *path, const struct kt_store_opts *o,
                         struct kt_store **out)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, configure_sqlite);
  struct sq *st = calloc(1, sizeof *st);
  if (!st)
    return -ENOMEM;
  st->base.ops = &sqlite_ops;
  st->base.wq = &st->wq;
  pthread_mutex_init(&st->rmu, NULL);
  pthread_mutex_init(&st->cmu, NULL);
  pthread_cond_init(&st->cwake, NULL);
  int rc = open_conn(path, &st->wdb);
  rc = rc ? rc : check_schema(st->wdb, path);
  rc = rc ? rc : open_conn(path, &st->rdb);
  rc = rc ? rc : prepare(st);
  rc = rc ? rc : start_checkpointer(st, path, o ? o->wal_bytes : 0);
  if (rc)
    kt_error("store: %s is not a usable kelemetry database (corrupt, "
             "read-only or not SQLite); move it away or choose another "
             "--data-dir", path);
  if (!rc) {
    register_metrics(st);
    st->wq.rows_only = 1;
    rc = kt__wq_start(&st->wq, o, commit_with_retry, st,
                      o && o->writer_name ? o->writer_name : "kt-writer");
  }
  if (rc) {
    sq_free(st);
    return rc == -EPROTO || rc == -EAGAIN ? rc : -EIO;
  }
  *out = &st->base;
  return 0;
}
